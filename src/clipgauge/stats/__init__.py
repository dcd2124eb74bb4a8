"""Statistics over per-row scores: summaries and confidence intervals."""

from .summary import bootstrap_mean_ci, describe

__all__ = ["bootstrap_mean_ci", "describe"]

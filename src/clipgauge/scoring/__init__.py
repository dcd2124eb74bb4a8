"""Scoring: the :class:`Scorer` API and the score scales (``Scorer`` is imported on first use: it needs torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .scales import SCALE_DEFINITIONS, SCALES, aggregate, to_scale

if TYPE_CHECKING:
    from .scorer import PairScores, Scorer


def __getattr__(name: str) -> Any:
    if name in ("Scorer", "PairScores"):
        from . import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'clipgauge.scoring' has no attribute {name!r}")


__all__ = ["SCALES", "SCALE_DEFINITIONS", "PairScores", "Scorer", "aggregate", "to_scale"]

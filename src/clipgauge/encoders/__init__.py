"""Model families behind one interface (:class:`~clipgauge.encoders.base.Encoder`)."""

from .base import Encoder, Tokens
from .resolve import DEFAULT_MODEL, early_crop_plan, resolve_encoder

__all__ = ["DEFAULT_MODEL", "Encoder", "Tokens", "early_crop_plan", "resolve_encoder"]

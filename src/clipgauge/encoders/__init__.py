"""Model families behind one interface (:class:`~clipgauge.encoders.base.Encoder`)."""

from .base import Encoder, Tokens
from .resolve import DEFAULT_MODEL, resolve_encoder

__all__ = ["DEFAULT_MODEL", "Encoder", "Tokens", "resolve_encoder"]

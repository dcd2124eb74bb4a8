"""Scoring: the :class:`Scorer` API and the score scales."""

from .scales import SCALE_DEFINITIONS, SCALES, aggregate, to_scale
from .scorer import PairScores, Scorer

__all__ = ["SCALES", "SCALE_DEFINITIONS", "PairScores", "Scorer", "aggregate", "to_scale"]

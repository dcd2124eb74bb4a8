"""Scoring's lower half: the :class:`Embedder` (a model loaded once: image and prompt embeddings), its settings
(:class:`ScorerSettings`) and the score scales. Both are imported on first use (``Embedder`` needs torch).

Scores themselves are computed by the metrics through the one scoring step (:mod:`clipgauge.pipeline`);
:class:`clipgauge.Scorer` (``score``, ``score_pairs``) is an ``Embedder`` that does that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .scales import SCALE_DEFINITIONS, SCALES, aggregate, to_scale

if TYPE_CHECKING:
    from .scorer import Embedder, PairScores
    from .settings import ScorerSettings


def __getattr__(name: str) -> Any:
    if name in ("Embedder", "PairScores"):
        from . import scorer

        return getattr(scorer, name)
    if name == "ScorerSettings":
        from .settings import ScorerSettings

        return ScorerSettings
    if name == "Scorer":
        raise AttributeError("clipgauge.scoring.Scorer is now clipgauge.Scorer (clipgauge.pipeline.pairs.Scorer); "
                             "the model part alone is clipgauge.scoring.Embedder")
    raise AttributeError(f"module 'clipgauge.scoring' has no attribute {name!r}")


__all__ = ["SCALES", "SCALE_DEFINITIONS", "Embedder", "PairScores", "ScorerSettings", "aggregate", "to_scale"]

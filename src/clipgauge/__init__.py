"""clipgauge: exact, fast CLIP scores for text-to-image evaluation.

>>> from clipgauge import Scorer
>>> scorer = Scorer("openai/clip-vit-large-patch14")          # doctest: +SKIP
>>> scorer.score(["cat.png"], "a photo of a cat")              # doctest: +SKIP
array([0.31], dtype=float32)  # cosine in [-1, 1]
>>> from clipgauge import ScoreOptions, score                  # a whole run, as `clipgauge score` does it
>>> score("manifest.jsonl", "results.jsonl", ScoreOptions(metrics=["clip", "aesthetic"]))  # doctest: +SKIP

Heavy modules (torch, transformers) are imported on first use of :class:`Scorer`, so commands that
only read results files (compare, select, sweep, report) start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .defaults import DEFAULT_MODEL
from .errors import DecodeError, ModelLoadError, OutputError, RowError, UsageError
from .scoring.scales import SCALES

if TYPE_CHECKING:
    from .backbones import compare_backbones
    from .distribution.run import distance, save_reference
    from .pipeline.pairs import Scorer
    from .pipeline.plan import ScoreOptions
    from .runs import ScoreResult, score
    from .scoring.scorer import PairScores
    from .validation import validate
    from .zeroshot.classify import classify
    from .zeroshot.retrieve import RetrievalResult, retrieve

_LAZY = {"Scorer": "pipeline.pairs", "PairScores": "scoring.scorer", "score": "runs", "ScoreResult": "runs",
         "ScoreOptions": "pipeline.plan", "validate": "validation", "compare_backbones": "backbones",
         "classify": "zeroshot.classify", "retrieve": "zeroshot.retrieve", "RetrievalResult": "zeroshot.retrieve",
         "distance": "distribution.run", "save_reference": "distribution.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'clipgauge' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "SCALES",
    "DecodeError",
    "ModelLoadError",
    "OutputError",
    "PairScores",
    "RetrievalResult",
    "RowError",
    "ScoreOptions",
    "ScoreResult",
    "Scorer",
    "UsageError",
    "__version__",
    "classify",
    "compare_backbones",
    "distance",
    "retrieve",
    "save_reference",
    "score",
    "validate",
]

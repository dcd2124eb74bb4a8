"""clipgauge: exact, fast CLIP scores for text-to-image evaluation.

>>> from clipgauge import Scorer
>>> scorer = Scorer("openai/clip-vit-large-patch14")          # doctest: +SKIP
>>> scorer.score(["cat.png"], "a photo of a cat")              # doctest: +SKIP
array([0.31], dtype=float32)  # cosine in [-1, 1]
"""

from ._version import __version__
from .encoders import DEFAULT_MODEL
from .errors import DecodeError, ModelLoadError, RowError, UsageError
from .scoring import SCALES, PairScores, Scorer

__all__ = [
    "DEFAULT_MODEL",
    "SCALES",
    "DecodeError",
    "ModelLoadError",
    "PairScores",
    "RowError",
    "Scorer",
    "UsageError",
    "__version__",
]

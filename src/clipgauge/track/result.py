"""What one tracker evaluation produces: summary scalars, per-prompt scores, the best and worst images.

Scores are in the tracker's scale (default: raw cosine in [-1, 1]; ``torchmetrics``: 100 × cosine;
``clip-s``: 2.5 × max(cosine, 0); ``angle``: cosine, with ``clip/angle_mean`` … in degrees beside).
Summary statistics are over every scored image of the evaluation
(not over per-prompt means), so ``min <= mean <= max`` always holds; ``std`` is the sample standard
deviation (ddof=1, NaN for fewer than two images), as in ``clipgauge score`` summaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Summary statistics written at every evaluation, as ``PREFIX/NAME``.
SUMMARY_STATS = ("mean", "min", "max", "std", "n")


@dataclass
class PromptScores:
    """All scores of one prompt at one evaluation (several images per prompt are all kept)."""

    name: str
    prompt: str
    scores: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")


@dataclass
class Extreme:
    """One of the best or worst images of an evaluation: its score, prompt and a thumbnail (PIL or None)."""

    name: str
    prompt: str
    score: float
    image: Any = None


@dataclass
class TrackResult:
    """One evaluation. ``metrics`` is the flat dict that writers write: ``clip/mean`` … ``clip/n``,
    ``clip/errors`` when some images could not be scored, and ``clip/prompt/NAME`` per prompt."""

    step: int
    metrics: dict[str, float]
    per_prompt: dict[str, PromptScores]
    scale: str = "cosine"
    prefix: str = "clip"
    best: list[Extreme] = field(default_factory=list)
    worst: list[Extreme] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    wall_time: float = 0.0
    #: seconds this evaluation took (scoring, gathering, alerts), not counting the writers
    seconds: float = 0.0

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    @property
    def summary(self) -> dict[str, float]:
        """Only the summary scalars (``clip/mean``, ``clip/min``, ``clip/max``, ``clip/std``, ``clip/n``)."""
        return {f"{self.prefix}/{s}": self.metrics[f"{self.prefix}/{s}"] for s in SUMMARY_STATS}

    @property
    def mean(self) -> float:
        return self.metrics[f"{self.prefix}/mean"]

    @property
    def n(self) -> int:
        return int(self.metrics[f"{self.prefix}/n"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (NaN → None); thumbnails are left out."""
        def clean(v: float) -> float | None:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "step": self.step,
            "wall_time": self.wall_time,
            "seconds": self.seconds,
            "scale": self.scale,
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "per_prompt": {n: {"prompt": p.prompt, "mean": clean(p.mean), "scores": p.scores}
                           for n, p in self.per_prompt.items()},
            "best": [{"name": e.name, "prompt": e.prompt, "score": e.score} for e in self.best],
            "worst": [{"name": e.name, "prompt": e.prompt, "score": e.score} for e in self.worst],
            "errors": list(self.errors),
            "alerts": [a.to_dict() if hasattr(a, "to_dict") else str(a) for a in self.alerts],
        }


def summary_stats(scores: np.ndarray, prefix: str = "clip") -> dict[str, float]:
    """``PREFIX/mean``, ``/min``, ``/max``, ``/std`` (ddof=1) and ``/n`` of the non-NaN *scores*."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[~np.isnan(x)]
    nan = float("nan")
    return {
        f"{prefix}/mean": float(x.mean()) if x.size else nan,
        f"{prefix}/min": float(x.min()) if x.size else nan,
        f"{prefix}/max": float(x.max()) if x.size else nan,
        f"{prefix}/std": float(x.std(ddof=1)) if x.size > 1 else nan,
        f"{prefix}/n": float(x.size),
    }

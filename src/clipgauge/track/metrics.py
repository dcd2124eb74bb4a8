"""What the tracker computes per image: the CLIP score and any other metrics (``aesthetic/mean``, ``pickscore/mean`` …).

All of it comes from one call of the scoring step of ``clipgauge score`` (:class:`clipgauge.pipeline.pairs.PairStep`:
the ``clip`` metric on the tracker's model, then the other metrics, sharing that model wherever a metric uses the
same one), so the numbers are the command's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .result import summary_stats


@dataclass
class TrackedScores:
    """One evaluation's values on this rank: the cosines (NaN where a pair could not be scored), each pair's error
    (None where it was scored) and every other metric's score columns (NaN where a row has no value)."""

    cosine: np.ndarray
    errors: list[str | None]
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    #: the (N, D) float32 image embeddings the CLIP score used (NaN rows where none), when asked for
    image_embeddings: np.ndarray | None = None


class TrackedMetrics:
    """The CLIP score and the metrics *specs* (``"aesthetic"``, ``"clip_iqa:prompts=quality"`` …) of the tracker's
    images, scored with the tracker's loaded model (*scorer*, an :class:`~clipgauge.scoring.scorer.Embedder`).

    The scoring step is built on first use; other models are loaded then, on *device* at *precision*.
    """

    def __init__(self, specs: Sequence[str], scorer: Any, *, precision: str = "fp32") -> None:
        self.specs = [s for s in specs if s != "clip"]  # the CLIP score is always computed
        self.scorer = scorer
        self.precision = precision
        self._step: Any = None

    @property
    def _plan(self) -> Any:
        return self._step.plan if self._step is not None else None

    def _load(self, device: Any) -> None:
        from ..pipeline.pairs import PairStep

        self._step = PairStep(self.scorer, self.specs, device=str(device), precision=self.precision)

    def columns(self) -> list[str]:
        """The score columns of the other metrics, written as ``NAME/mean`` … (summarized float columns)."""
        return [c.name for c in self._step.plan.columns() if c.summarize and c.type == "float64"]

    def evaluate(self, srcs: Sequence[Any], texts: Sequence[str], device: Any, *,
                 keep_embeddings: bool = False) -> TrackedScores:
        """Score the images *srcs* against their prompts *texts* (one per image) in one pass of the scoring step
        (with *keep_embeddings*, the image embeddings of that pass are kept too)."""
        if not srcs:
            return TrackedScores(np.zeros(0), [], {})
        if self._step is None:
            self._load(device)
        table, embeddings = self._step.table(srcs, texts, keep_embeddings=keep_embeddings)
        errors = table.column("error").to_pylist()
        cosine = table.column("cosine").to_numpy(zero_copy_only=False).astype(np.float64)
        errors = [e if np.isnan(c) else None for e, c in zip(errors, cosine)]  # the CLIP score's own reasons
        others = {name: np.array([np.nan if v is None else v for v in table.column(name).to_pylist()],
                                 dtype=np.float64) for name in self.columns()} if self.specs else {}
        return TrackedScores(cosine, errors, others, embeddings)

    def score(self, srcs: Sequence[Any], texts: Sequence[str], device: Any) -> dict[str, np.ndarray]:
        """Each other metric's score column for the images *srcs* and their prompts (NaN where a row has none)."""
        if not self.specs:
            return {}
        return self.evaluate(srcs, texts, device).metrics


def metric_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """``NAME/mean``, ``/min``, ``/max``, ``/std``, ``/n`` of every metric column over the gathered *parts*."""
    names = list(dict.fromkeys(name for p in parts for name in p))
    out: dict[str, float] = {}
    for name in names:
        out.update(summary_stats(np.concatenate([p[name] for p in parts if name in p]), name))
    return out

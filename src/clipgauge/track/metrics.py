"""Other metrics beside the CLIP score in the tracker (``aesthetic/mean``, ``pickscore/mean`` …).

They are computed by the same scoring step as ``clipgauge score`` (:func:`clipgauge.pipeline.score.score_rows`),
sharing the tracker's CLIP model wherever a metric uses the same one, so the numbers are the command's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..sources.shards import SourceRow
from .result import summary_stats


class TrackedMetrics:
    """Metrics *specs* (``"aesthetic"``, ``"clip_iqa:prompts=quality"`` …) scored on the tracker's images.

    Loaded on first use, on *device*; a metric whose model is the tracker's (*scorer*) shares it.
    """

    def __init__(self, specs: Sequence[str], scorer: Any, *, precision: str = "fp32") -> None:
        self.specs = list(specs)
        self.scorer = scorer
        self.precision = precision
        self._plan: Any = None
        self._schema: Any = None

    def _load(self, device: Any) -> None:
        import pyarrow as pa

        from ..pipeline.plan import ScoreOptions, ScoringPlan

        options = ScoreOptions(metrics=self.specs, model=self.scorer.model_spec, device=str(device),
                               precision=self.precision, batch_size=self.scorer.batch_size,
                               prompt_prefix=self.scorer.prompt_prefix, language=False)  # a fixed prompt library
        self._plan = ScoringPlan(options, embedders={self.scorer.model_spec: self.scorer}).load()
        self._schema = self._plan.output_schema(pa.schema([]))

    def columns(self) -> list[str]:
        """The score columns written as ``NAME/mean`` … (summarized float columns of the metrics)."""
        return [c.name for c in self._plan.columns() if c.summarize and c.type == "float64"]

    def score(self, srcs: Sequence[Any], texts: Sequence[str], device: Any) -> dict[str, np.ndarray]:
        """Each score column's values for the images *srcs* and their prompts (NaN where a row has none)."""
        if not self.specs or not srcs:
            return {}
        if self._plan is None:
            self._load(device)
        rows = [SourceRow(i, f"image {i}", image=src, prompt=text) for i, (src, text) in enumerate(zip(srcs, texts))]
        from ..pipeline.score import score_rows

        table = score_rows(self._plan, rows, self._schema)
        return {name: np.array([np.nan if v is None else v for v in table.column(name).to_pylist()], dtype=np.float64)
                for name in self.columns()}


def metric_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """``NAME/mean``, ``/min``, ``/max``, ``/std``, ``/n`` of every metric column over the gathered *parts*."""
    names = list(dict.fromkeys(name for p in parts for name in p))
    out: dict[str, float] = {}
    for name in names:
        out.update(summary_stats(np.concatenate([p[name] for p in parts if name in p]), name))
    return out

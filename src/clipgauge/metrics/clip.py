"""``clip``: the CLIP score, cos(image, prompt) of L2-normalised CLIP embeddings, with its scales.

Columns: ``score`` (in the chosen scale), ``cosine`` (always the raw cosine, in [-1, 1]) and ``truncated``
(the prompt was longer than the model's text context and was cut, keeping the end-of-text token).
With ``suffix=S`` the columns are ``scoreS``, ``cosineS`` and ``truncatedS`` and the summary sits under
``clipS``, so several ``clip`` metrics with different models share one run (``clipgauge backbones``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from ..scoring.scales import HIGHER_IS_BETTER, SCALE_DEFINITIONS, SCALES, to_scale
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot

_RANGES = {"cosine": (-1.0, 1.0), "torchmetrics": (-100.0, 100.0), "clip-s": (0.0, 2.5), "angle": (0.0, 180.0)}
_UNITS = {"cosine": "cosine", "torchmetrics": "100 x cosine", "clip-s": "2.5 x max(cosine, 0)",
          "angle": "degrees (arccos of cosine)"}


class ClipScore(Metric):
    name = "clip"
    summary = "CLIP score: cosine of the image and prompt embeddings (scales: cosine, torchmetrics, clip-s)"
    options = {"model": "CLIP model spec (default: --model)",
               "scale": f"scale of the 'score' column: {', '.join(SCALES)} (default: --scale, else cosine)",
               "suffix": "appended to the column names (score, cosine, truncated), so several clip metrics with "
                         "different models can run together (default: none)"}
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        self.scale = str(self.config.get("scale") or "cosine")
        if self.scale not in SCALES:
            raise UsageError(f"unknown scale '{self.scale}' (choose from {', '.join(SCALES)})")
        self.suffix = str(self.config.get("suffix") or "")
        if self.suffix and not all(ch.isalnum() or ch in "_-." for ch in self.suffix):
            raise UsageError(f"clip suffix '{self.suffix}': use letters, digits, '_', '-' and '.'")
        self._image = Need("image_embedding", self.model)
        self._text = Need("text_embedding", self.model)

    def needs(self) -> list[Need]:
        return [self._image, self._text]

    def columns(self) -> list[Column]:
        s = self.suffix
        return [
            Column("score" + s, description=f"CLIP score, '{self.scale}' scale: {SCALE_DEFINITIONS[self.scale]['row']}",
                   range=_RANGES[self.scale], unit=_UNITS[self.scale], summarize=False,
                   higher_is_better=HIGHER_IS_BETTER[self.scale]),
            Column("cosine" + s, description="cosine of the L2-normalised image and prompt embeddings",
                   range=(-1.0, 1.0), unit="cosine", summarize=False),
            Column("truncated" + s, type="bool", description="the prompt was longer than the model's text context",
                   higher_is_better=None, summarize=False),
        ]

    def primary(self) -> Column:
        """The raw ``cosine`` (``--scale`` converts it; ``score`` is it in the run's scale)."""
        return self.columns()[1]

    def compute(self, batch: MetricBatch) -> MetricOutput:
        cosine = unit_vectors_dot(batch.values[self._image], batch.values[self._text])
        s = self.suffix
        return MetricOutput({"score" + s: to_scale(cosine, self.scale), "cosine" + s: cosine,
                             "truncated" + s: batch.truncated[self._text]})

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """``scored``, ``truncated`` and the statistics of the cosines in every scale (see
        :func:`~clipgauge.stats.summary.summarize_scores`); with a suffix, all of it under ``clipSUFFIX``."""
        from ..stats.summary import summarize_scores

        s = self.suffix
        out = summarize_scores(values["cosine" + s], values["truncated" + s], [], confidence=confidence)
        doc = {"scored": out["scored"], "truncated": out["truncated"], "scales": out["scales"], "scale": self.scale}
        return {f"clip{s}": {**doc, "model": self.model}} if s else doc

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "scale": self.scale, "scales": SCALE_DEFINITIONS}

    @property
    def key(self) -> str:
        """The metric's name in the summary's ``metrics`` and the provenance (with its suffix)."""
        return self.name + self.suffix

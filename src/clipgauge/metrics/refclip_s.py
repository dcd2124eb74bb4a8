"""``refclip_s``: RefCLIP-S (Hessel et al. 2021, eq. 2), exactly as the CLIPScore paper's code computes it.

The harmonic mean of CLIP-S = 2.5 × max(cos(image, prompt), 0) and the best reference cosine
max(max_r cos(prompt, r), 0), r ranging over the row's reference captions (text embeddings of the same CLIP).
In [0, 2.5]. Columns: ``ref_cosine`` (max_r cos(prompt, r), in [-1, 1]) and ``refclip_s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from ..scoring.reference import refclip_s
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot


class RefClipS(Metric):
    name = "refclip_s"
    summary = "RefCLIP-S: harmonic mean of CLIP-S and the best prompt-reference caption cosine"
    options = {"column": "column of reference captions: text, a list, or a JSON array (required; "
                         "--reference-text COLUMN)",
               "model": "CLIP model spec (default: --model)"}
    needs_text = ["image_embedding", "text_embedding (prompt and reference captions)"]
    columns_text = ["ref_cosine", "refclip_s"]
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.column = self.config.get("column")
        if not self.column:
            raise UsageError("metric 'refclip_s' needs column=NAME (the column of reference captions)")
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        self._image = Need("image_embedding", self.model)
        self._text = Need("text_embedding", self.model)
        self._refs = Need("text_embedding", self.model, column=self.column, many=True)

    def needs(self) -> list[Need]:
        return [self._image, self._text, self._refs]

    def columns(self) -> list[Column]:
        return [
            Column("ref_cosine", description=f"max over the captions in '{self.column}' of cos(prompt, caption)",
                   range=(-1.0, 1.0), unit="cosine"),
            Column("refclip_s", description="harmonic mean of 2.5*max(cos(image, prompt), 0) and "
                   "max(ref_cosine, 0) (Hessel et al. 2021)", range=(0.0, 2.5), unit="RefCLIP-S"),
        ]

    def compute(self, batch: MetricBatch) -> MetricOutput:
        prompts, refs = batch.values[self._text], batch.values[self._refs]
        best = np.full(len(batch), np.nan)
        for i, r in enumerate(refs):
            if r is not None and not np.isnan(prompts[i]).any():
                best[i] = max(float(np.dot(prompts[i], e)) for e in r)
        cosine = unit_vectors_dot(batch.values[self._image], prompts)
        return MetricOutput({"ref_cosine": best, "refclip_s": refclip_s(cosine, best)}, batch.errors[self._refs])

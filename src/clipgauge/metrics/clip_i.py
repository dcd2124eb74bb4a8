"""``clip_i``: CLIP-I, the cosine of the generated image's embedding with a reference image's, in [-1, 1].

Used to judge subject fidelity after subject fine-tuning (e.g. DreamBooth). The reference is a column of image
paths (resolved like the row's image). A row without a usable reference keeps its other scores and gets the
reason in ``error``.
"""

from __future__ import annotations

from typing import Any

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot


class ClipI(Metric):
    name = "clip_i"
    summary = "CLIP-I: cosine of the image with a reference image (column of paths)"
    options = {"column": "column of reference image paths (required; --reference-image COLUMN)",
               "model": "CLIP model spec (default: --model)"}
    needs_text = ["image_embedding (row image and reference image)"]
    columns_text = ["clip_i"]
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.column = self.config.get("column")
        if not self.column:
            raise UsageError("metric 'clip_i' needs column=NAME (the column of reference image paths)")
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        self._image = Need("image_embedding", self.model)
        self._reference = Need("image_embedding", self.model, column=self.column)

    def needs(self) -> list[Need]:
        return [self._image, self._reference]

    def columns(self) -> list[Column]:
        return [Column("clip_i", description=f"cosine of the image with the reference image in '{self.column}'",
                       range=(-1.0, 1.0), unit="cosine")]

    def compute(self, batch: MetricBatch) -> MetricOutput:
        ref_errors = batch.errors[self._reference]
        image_errors = batch.errors[self._image]
        # a reference problem matters only for rows whose own image is fine (as the paper's setting has it)
        errors = [r if r is not None and i is None else None for r, i in zip(ref_errors, image_errors)]
        return MetricOutput({"clip_i": unit_vectors_dot(batch.values[self._image], batch.values[self._reference])},
                            errors)

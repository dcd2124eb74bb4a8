"""``diversity``: per-prompt diversity, the mean pairwise cosine distance among the images of one prompt.

For runs with several images per prompt (seeds), each row gets, for its group (the rows of the same prompt, or of
the same value of ``group=COLUMN``)::

    diversity = mean over pairs i < j of (1 - cos(e_i, e_j))      (n images, n(n-1)/2 pairs)

with ``e`` the row images' L2-normalised CLIP embeddings of ``model``. It lies in [0, 2]: 0 when every image of the
prompt embeds the same (mode collapse, the failure reward fine-tuning tends to), higher for more varied images.
Each row of a group carries the same value (a run column, filled in once every row is scored); a group with one
usable image has none (null), and rows with an error (or no image embedding) are left out of their group and get
none. ``diversity_images`` is the number of images the value was computed from.

Direction: ``higher_is_better=True``. More diverse is "better" in the mode-collapse sense this metric is for; it
says nothing about prompt adherence (read it beside the CLIP score, never instead of it).

The summary is over **groups**, not rows: ``diversity`` in the run summary describes one value per group with at
least two images (mean, bootstrap CI of the mean over groups, …) and ``groups`` counts them.

To be computed over the whole run, each row's image embedding is kept in the results as ``diversity_embedding``
(float32, little-endian, base64 text; about 2.7 kB a row for a 512-d model), the same vector the CLIP score of that
model uses.
"""

from __future__ import annotations

import base64
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..stats.diversity import group_diversity, per_group_values
from .base import Column, Metric, MetricBatch, MetricOutput, Need

RECIPE = ("diversity = mean over the pairs i < j of the images of one group of (1 - e_i . e_j), e the L2-normalised "
          "CLIP image embeddings (float32, dot products in float64); range [0, 2]; null for a group with one image; "
          "rows with an error left out")
#: the column that keeps each row's embedding for the run-level computation
EMBEDDING = "diversity_embedding"


def encode_vector(vector: np.ndarray) -> str | None:
    """A float32 vector as base64 text of its little-endian bytes (None for a missing, NaN vector)."""
    v = np.asarray(vector, dtype="<f4")
    if v.size == 0 or np.isnan(v).any():
        return None
    return base64.b64encode(v.tobytes()).decode("ascii")


def decode_vector(text: str | None) -> np.ndarray | None:
    """The float32 vector :func:`encode_vector` wrote (None for None or empty text)."""
    if not text:
        return None
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


class Diversity(Metric):
    name = "diversity"
    summary = "per-prompt diversity: mean pairwise cosine distance (1 - cos) among the images of one prompt (0-2)"
    options = {"model": "CLIP model spec (default: --model)",
               "group": "column whose value groups the images (default: prompt; e.g. prompt_id)"}
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        #: the column grouping rows at finalize (read by :func:`clipgauge.pipeline.finalize.finalize_run`)
        self.group_column = str(self.config.get("group") or "prompt").strip()
        self._image = Need("image_embedding", self.model)

    def needs(self) -> list[Need]:
        return [self._image]

    def columns(self) -> list[Column]:
        return [Column(EMBEDDING, type="string", higher_is_better=None, summarize=False,
                       description=f"the row image's L2-normalised embedding of {self.model} that diversity is "
                                   "computed from: float32 little-endian bytes, base64", unit="embedding")]

    def run_columns(self) -> list[Column]:
        return [Column("diversity", description=f"mean pairwise cosine distance (1 - cos) among the images of "
                       f"the row's '{self.group_column}' group; null for a group of one image", range=(0.0, 2.0),
                       unit="cosine distance", higher_is_better=True),
                Column("diversity_images", description="images of the row's group that diversity was computed "
                       "from", range=(0.0, None), unit="images", higher_is_better=None, summarize=False)]

    def primary(self) -> Column | None:
        return self.run_columns()[0]

    def finalize_inputs(self) -> list[str]:
        """Columns besides the float ones that :meth:`finalize` reads, as Python values (one per row)."""
        return [EMBEDDING, "error"]

    def compute(self, batch: MetricBatch) -> MetricOutput:
        vectors = batch.values[self._image]
        errors = batch.errors.get(self._image) or [None] * len(batch)
        return MetricOutput({EMBEDDING: [None if e is not None else encode_vector(v)
                                         for v, e in zip(vectors, errors)]})

    def finalize(self, values: dict[str, Any], groups: Sequence[Hashable]) -> dict[str, np.ndarray]:
        """``diversity`` and ``diversity_images`` of every row from the kept embeddings and group keys."""
        errors = values.get("error") or [None] * len(groups)
        vectors = [None if err else decode_vector(text) for text, err in zip(values[EMBEDDING], errors)]
        diversity, counts = group_diversity(vectors, groups)
        return {"diversity": diversity, "diversity_images": counts}

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """``diversity``: statistics over the groups with two images or more (one value each), with ``groups``."""
        from ..stats.summary import describe

        if "diversity" not in values:
            return {}
        per_group = per_group_values(np.asarray(values["diversity"], dtype=np.float64),
                                     np.asarray(values["diversity_images"], dtype=np.float64))
        return {"diversity": {**describe(per_group, confidence=confidence), "groups": int(per_group.size),
                              "unit": "group", "group": self.group_column}}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "group": self.group_column, "recipe": RECIPE,
                "columns": [c.describe() for c in (*self.columns(), *self.run_columns())]}

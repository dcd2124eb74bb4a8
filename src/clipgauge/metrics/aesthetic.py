"""``aesthetic``: the LAION aesthetic predictor, a small head on the L2-normalised CLIP image embedding.

* **v2** ("improved aesthetic predictor", the default): ``sac+logos+ava1-l14-linearMSE.pth``, a five-layer MLP
  without activations on OpenAI CLIP ViT-L/14 (``v2-linear``); its ReLU sibling ``ava+logos-l14-reluMSE.pth``
  (``v2-relu``).
* **v1**: the linear heads ``sa_0_4_vit_l_14_linear.pth`` (768 → 1, ViT-L/14), ``sa_0_4_vit_b_32_linear.pth`` and
  ``sa_0_4_vit_b_16_linear.pth`` (512 → 1, ViT-B/32, ViT-B/16) (``v1-linear``).

The version is read from the file's keys (see :mod:`.aesthetic_head`) and named in the summary and provenance.
Scores of different versions are on different scales: never compare them. Column ``aesthetic``: the predicted
mean rating of the training sets (AVA, SAC, LAION-Logos), about 1–10; higher is better; not bounded.

Options: ``head`` (a file, a hub file ``ORG/NAME/FILE``, either after ``hf:`` or not, or ``demo``; default the v2
head on the hub) and ``model`` (the CLIP backbone; default the OpenAI CLIP the head was published for, by file name,
else ViT-L/14), both read by the one model-spec grammar (``clipgauge.encoders.registry.parse_model_option``). The
run's ``--model`` does not move it (``inherits = ()``); with the same model spec as ``clip`` the backbone is shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL, WEIGHT_FILE
from ..errors import UsageError
from .aesthetic_head import (
    DEFAULT_HEAD,
    FORMATS,
    PUBLISHED_BACKBONES,
    AestheticHead,
    detect,
    read_state_dict,
    resolve_head,
)
from .base import Column, Metric, MetricBatch, MetricOutput, Need

RECIPE = ("score = head(e / ||e||), e the CLIP image embedding of the model (the published recipe: OpenAI CLIP "
          "encode_image, L2-normalised, then the head in float32 with dropout off)")
VERSION_WARNING = ("aesthetic scores of different head versions (v1-linear, v2-linear, v2-relu, demo) are on "
                   "different scales and cannot be compared")


class Aesthetic(Metric):
    name = "aesthetic"
    summary = "LAION aesthetic predictor (v2 MLP by default, or v1 linear) on the CLIP image embedding, about 1-10"
    options = {"head": f"head file (.pth state dict or .safetensors), hub file ORG/NAME/FILE (either may follow "
                       f"hf:), or demo (default: {DEFAULT_HEAD}, v2)",
               "model": "CLIP model spec of the head's backbone (default: the OpenAI CLIP the head was published "
                        f"for, else {DEFAULT_MODEL}; not --model)"}
    model_options = {"model": ANY_MODEL, "head": WEIGHT_FILE + ("demo",)}
    inherits = ()
    #: the result column (the demo head writes its own, so both can run together)
    column = "aesthetic"
    default_head = DEFAULT_HEAD
    default_model = DEFAULT_MODEL

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.head_spec = str(self.config.get("head") or self.default_head).strip()
        head = self.model_specs.get("head")  # hf:FILE and hf:ORG/NAME/FILE too, as the one grammar reads them
        self._head_source = self.head_spec
        if head is not None and head.family == "file" and head.source:
            self._head_source = head.source
        self.model = str(self.config.get("model") or self._published_backbone() or self.default_model)
        self._need = Need("image_embedding", self.model)
        self._head: AestheticHead | None = None

    def _published_backbone(self) -> str | None:
        if self._head_source == "demo":
            return "demo"
        return PUBLISHED_BACKBONES.get(Path(self._head_source).name)

    # ----------------------------------------------------------------- declarations
    def needs(self) -> list[Need]:
        return [self._need]

    def columns(self) -> list[Column]:
        return [Column(self.column, description="LAION aesthetic predictor score of the image: the head (version "
                       "in the summary and provenance) on the L2-normalised CLIP image embedding; compare only "
                       "scores of the same head", range=(None, None), unit="LAION aesthetic score (about 1-10)",
                       higher_is_better=True)]

    # ----------------------------------------------------------------- life cycle
    def head(self) -> AestheticHead:
        """The loaded head (found, read safely, hashed and its version detected on first use)."""
        if self._head is None:
            from ..hashing import file_sha256

            path, source = resolve_head(self._head_source)
            state = read_state_dict(path)
            self._head = detect(state, path, file_sha256(path), {**source, "given": self.head_spec})
        return self._head

    def predict(self, image_embeddings: Any) -> np.ndarray:
        """Scores of the head (float64, shape (N,); unbounded, higher is better: about 1–10 for the LAION heads)
        for (N, D) image embeddings of this metric's ``model``, e.g. ``Scorer(model).embed_images(images)``.

        The embeddings are L2-normalised here (the published recipe; ``embed_images`` already gives unit
        vectors); :class:`UsageError` when D is not the head's input width."""
        e = np.asarray(image_embeddings, dtype=np.float32)
        if e.ndim != 2:
            raise UsageError(f"image embeddings must be a 2-d (N, D) array, got shape {e.shape}")
        head = self.head()
        head.check_width(int(e.shape[1]), self.model)
        if not len(e):
            return np.zeros(0, dtype=np.float64)
        return head.predict(e / np.linalg.norm(e, axis=1, keepdims=True))

    def setup(self, context: Any) -> None:
        """Load the head and check that its input width is the backbone's embedding width."""
        self.head().check_width(context.embedding_dim(self.model), self.model)

    def compute(self, batch: MetricBatch) -> MetricOutput:
        embeddings = batch.values[self._need]
        out = np.full(len(batch), np.nan, dtype=np.float64)
        head = self.head()
        if len(batch):
            head.check_width(int(embeddings.shape[1]), self.model)
            ok = ~np.isnan(embeddings).any(axis=1)
            if ok.any():
                out[ok] = head.predict(embeddings[ok])
        # a row without an image embedding already carries the image's error
        return MetricOutput({self.column: out})

    # ----------------------------------------------------------------- summary and records
    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """n, mean, CI… of the scores, with the head's ``version``, ``head`` (file) and ``model``."""
        from ..stats.summary import describe

        head = self.head()
        return {self.column: {**describe(values[self.column], confidence=confidence), "version": head.version,
                              "head": str(head.path), "model": self.model}}

    def provenance(self) -> dict[str, Any]:
        head = self.head()
        return {**super().provenance(), "version": head.version, "head": head.describe(), "model": self.model,
                "recipe": RECIPE, "warning": VERSION_WARNING,
                "formats": {f.version: f.layout for f in FORMATS}}

    def fingerprint(self) -> dict[str, Any]:
        head = self.head()
        return {**super().fingerprint(), "model": self.model, "version": head.version, "head_sha256": head.sha256}


class DemoAesthetic(Aesthetic):
    """The aesthetic head trained for the shipped demo CLIP (``head=demo`` on ``model=demo``): offline, for
    trying things out; its scores are not LAION aesthetic scores."""

    name = "demo-aesthetic"
    summary = "aesthetic head of the shipped demo CLIP (offline; not comparable with LAION aesthetic scores)"
    options = {"head": "head file (default: demo, the shipped head)",
               "model": "CLIP model spec (default: demo)"}
    column = "demo_aesthetic"
    default_head = "demo"
    default_model = "demo"

    def columns(self) -> list[Column]:
        return [Column(self.column, description="demo aesthetic head's score of the image (the shipped demo CLIP "
                       "image embedding through a small head trained on clean vs degraded demo renders)",
                       range=(None, None), unit="demo aesthetic score", higher_is_better=True)]

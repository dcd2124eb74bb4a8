"""``hpsv2`` and ``hpsv21``: Human Preference Score v2 and v2.1 (Wu et al. 2023), as ``hpsv2.score()`` computes them.

Each published file (``xswu/HPSv2``: ``HPS_v2_compressed.pt``, ``HPS_v2.1_compressed.pt``) holds
``torch.load(file)["state_dict"]``, the whole state dict of an OpenCLIP ViT-H-14 (keys ``visual.*``,
``transformer.*``, ``token_embedding.weight``, ``positional_embedding``, ``ln_final.*``, ``text_projection``,
``logit_scale``). HPSv2's code builds ``create_model_and_transforms('ViT-H-14', 'laion2B-s32B-b79K', …,
light_augmentation=True)``, loads that state dict strictly over it, and scores

    hps = normalize(encode_image(preprocess_val(image))) · normalize(encode_text(tokenizer([prompt])))

a cosine in [-1, 1] (about 0.2–0.35 for generated images). The benchmark tables of the HPSv2 README report
100 × the mean of these cosines (``evaluation.py``: ``image_features @ text_features.T * 100``); the summary gives
that number as ``x100``. Scores of v2.0 and v2.1 cannot be compared with each other.

HPSv2's ``preprocess_val`` (:class:`~clipgauge.encoders.hpsv2.HPSv2Transform`), the checkpoint and the model are
the ``hpsv2:ARCH:CHECKPOINT`` model family (:mod:`clipgauge.encoders.hpsv2`, known whenever :mod:`clipgauge.encoders`
is imported), one shared embedder per checkpoint: ``--metric clip --model hpsv2:…`` uses the same loaded model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.hpsv2 import (  # noqa: F401 - the family's names, kept importable from here
    DEFAULT_ARCH,
    FILES,
    HUB_REPO,
    MEAN,
    PREFIX,
    STD,
    HPSv2Transform,
    hpsv2_spec,
    read_checkpoint,
    resolve_checkpoint,
)
from ..encoders.registry import WEIGHT_FILE
from ..errors import UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot

RECIPE = ("hps = cos(image, prompt): OpenCLIP ARCH with the checkpoint's ['state_dict'] loaded strictly; "
          "encode_image / encode_text, each L2-normalised; prompts by open_clip.get_tokenizer(ARCH) (77 tokens, "
          "truncated keeping end-of-text); images by HPSv2's preprocess_val (light_augmentation=True): "
          "ToTensor, bicubic resize of the tensor so its longest side is the input size (antialias on), zero "
          "padding to a centred square, normalise with the OpenAI mean/std")
X100 = ("HPSv2's benchmark tables (README, evaluation.py) report 100 x the mean cosine: the summary's 'x100' "
        "holds that (mean and its CI times 100); hpsv2.score() itself returns the cosine, as the column does")


# ----------------------------------------------------------------------------------------------- the metrics
class HPSv2(Metric):
    name = "hpsv2"
    summary = "HPS v2.0: cosine of the HPSv2 OpenCLIP ViT-H-14 image and prompt embeddings (tables: x100)"
    version = "v2.0"
    column = "hpsv2"
    options = {"checkpoint": f"HPSv2 checkpoint: a file or a hub file ORG/NAME/FILE, either may follow hf: "
                             f"(default: {HUB_REPO}/{FILES['v2.0']})",
               "arch": f"OpenCLIP architecture of the checkpoint (default: {DEFAULT_ARCH}; not --model)"}
    model_options = {"checkpoint": WEIGHT_FILE}
    inherits = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.checkpoint = str(self.config.get("checkpoint") or f"{HUB_REPO}/{FILES[self.version]}").strip()
        self.arch = str(self.config.get("arch") or DEFAULT_ARCH).strip()
        if ":" in self.arch:
            raise UsageError(f"metric '{self.name}': arch '{self.arch}' is not an OpenCLIP architecture name")
        self.spec = hpsv2_spec(self.checkpoint, self.arch)
        self._image = Need("image_embedding", self.spec)
        self._text = Need("text_embedding", self.spec)
        self._file: dict[str, Any] | None = None

    def needs(self) -> list[Need]:
        return [self._image, self._text]

    def columns(self) -> list[Column]:
        return [Column(self.column, description=f"HPS {self.version}: cosine of the L2-normalised image and prompt "
                       f"embeddings of the HPSv2 model (hpsv2.score()); HPSv2's tables report 100 x the mean; "
                       f"compare only scores of the same version", range=(-1.0, 1.0), unit="cosine")]

    def setup(self, context: Any) -> None:
        """Hash the checkpoint the shared model was loaded from."""
        from ..hashing import file_sha256

        encoder = context.embedder(self.spec).encoder
        path = Path(encoder.checkpoint_path)
        self._file = {"file": str(path), "sha256": file_sha256(path), **encoder.checkpoint_source,
                      "given": self.checkpoint}

    def compute(self, batch: MetricBatch) -> MetricOutput:
        cosine = unit_vectors_dot(batch.values[self._image], batch.values[self._text])
        return MetricOutput({self.column: cosine})

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """n, mean, CI… of the cosines, and ``x100``: the mean and CI times 100, as the HPSv2 tables print them."""
        from ..stats.summary import describe

        stats = describe(values[self.column], confidence=confidence)
        x100 = {k: (None if stats.get(k) is None else 100.0 * stats[k]) for k in ("mean", "ci_low", "ci_high")}
        return {self.column: {**stats, "x100": x100, "version": self.version, "arch": self.arch,
                              "checkpoint": self.checkpoint}}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "version": self.version, "arch": self.arch, "spec": self.spec,
                "checkpoint": self._file, "recipe": RECIPE, "x100": X100,
                "warning": "HPS v2.0 and v2.1 scores cannot be compared with each other",
                "paper": "Wu et al. 2023, Human Preference Score v2: A Solid Benchmark for Evaluating Human "
                         "Preferences of Text-to-Image Synthesis"}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "version": self.version, "arch": self.arch,
                "checkpoint_sha256": (self._file or {}).get("sha256")}


class HPSv21(HPSv2):
    name = "hpsv21"
    summary = "HPS v2.1: cosine of the HPSv2.1 OpenCLIP ViT-H-14 image and prompt embeddings (tables: x100)"
    version = "v2.1"
    column = "hpsv21"
    options = {**HPSv2.options, "checkpoint": f"HPSv2.1 checkpoint: a file or a hub file ORG/NAME/FILE, either "
                                              f"may follow hf: (default: {HUB_REPO}/{FILES['v2.1']})"}

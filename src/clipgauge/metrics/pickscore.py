"""``pickscore``: PickScore v1 (Kirstain et al. 2023, "Pick-a-Pic"), exactly as its README computes it.

PickScore v1 (``yuvalkirstain/PickScore_v1``) is a transformers ``CLIPModel`` (a fine-tuned OpenCLIP ViT-H/14);
its tokenizer and image processor are those of another repo, ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``. Per row:

    pickscore = logit_scale.exp() × cos(image, prompt)

with the L2-normalised ``get_image_features`` / ``get_text_features`` of that model (usually about 18–24; the
model's ``logit_scale.exp()`` bounds it). Higher is better; it ranks images *of the same prompt*.

The preference probability of the README is the softmax of the scores over the images of one prompt. It needs
every row of the group, so it is not a per-batch column: :func:`pickscore_probabilities` computes it from the
scores and group keys of a whole run, and :func:`probabilities_for_rows` from its result rows.

The model is loaded through the ``pickscore:MODEL|PROCESSOR`` model family (:mod:`clipgauge.encoders.pickscore`,
known whenever :mod:`clipgauge.encoders` is imported), so it is one shared embedder: ``--metric clip --model
pickscore:…`` and ``pickscore`` use the same loaded model.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.pickscore import (  # noqa: F401 - the family's names, kept importable from here
    DEFAULT_MODEL,
    DEFAULT_PROCESSOR,
    PREFIX,
    SEPARATOR,
    local_source,
    parts,
    pickscore_spec,
    split_spec,
)
from ..encoders.registry import TRANSFORMERS
from ..errors import UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot

RECIPE = ("pickscore = model.logit_scale.exp() * cos(image, prompt): get_image_features / get_text_features of the "
          "CLIPModel, each divided by its L2 norm; prompts tokenised by the processor repo's CLIPTokenizer (padding, "
          "truncation to 77 tokens); images by its CLIPImageProcessor with the PIL backend (the original CLIP "
          "preprocessing: bicubic shortest-edge resize, centre crop), as in PickScore's README")
PROBABILITY = ("probability = softmax of pickscore over the rows of one group (the same prompt): "
               "exp(s_i) / sum_j exp(s_j), as PickScore's README calc_probs does for the images of one prompt")


# ----------------------------------------------------------------------------------------------- the model files
def weight_files(source: str) -> list[Path]:
    """The weight files transformers loads for *source* (a folder, or a hub id from the local cache): safetensors
    first, then a PyTorch pickle; a sharded model's shards. Empty when none is found."""
    local = local_source(source)

    def find(name: str) -> Path | None:
        if local is not None:
            return local / name if (local / name).is_file() else None
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(source, name)
        return Path(hit) if isinstance(hit, str) else None

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        found = find(single)
        if found is not None:
            return [found]
        found = find(index)
        if found is not None:
            shards = sorted(set(json.loads(found.read_text(encoding="utf-8"))["weight_map"].values()))
            paths = [find(s) for s in shards]
            return [p for p in paths if p is not None]
    return []


# ----------------------------------------------------------------------------------------------- probabilities
def pickscore_probabilities(scores: Sequence[float] | np.ndarray, groups: Sequence[Hashable]) -> np.ndarray:
    """The preference probability of each row within its group: ``softmax(scores)`` over the rows whose group key
    (e.g. the prompt) is the same, as PickScore's README does for the images of one prompt.

    *scores*: PickScores (NaN or None where a row has none); *groups*: one hashable key per row. Returns float64
    probabilities in [0, 1] that sum to 1 over each group's scored rows (1.0 for a group of one); NaN where a row
    has no score or no group (None).
    """
    values = np.array([np.nan if s is None else float(s) for s in scores], dtype=np.float64)
    if len(values) != len(groups):
        raise ValueError(f"{len(values)} scores but {len(groups)} group keys")
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(groups):
        if key is not None and not np.isnan(values[i]):
            members.setdefault(key, []).append(i)
    out = np.full(len(values), np.nan, dtype=np.float64)
    for idx in members.values():
        s = values[idx]
        e = np.exp(s - s.max())  # the same softmax, without overflow
        out[idx] = e / e.sum()
    return out


def probabilities_for_rows(rows: Iterable[dict[str, Any]], *, column: str = "pickscore",
                           group: str = "prompt") -> list[float | None]:
    """:func:`pickscore_probabilities` of result rows (e.g. ``clipgauge.sinks.read_results(path)``): the scores
    in *column*, grouped by the value of *group* (the prompt by default; any carried column works, such as a
    prompt id). None where a row has no probability. :class:`UsageError` when the rows lack either column."""
    rows = list(rows)
    for name in (column, group):
        if rows and not any(name in r for r in rows):
            raise UsageError(f"the results have no '{name}' column")
    keys = [r.get(group) for r in rows]
    keys = [json.dumps(k, sort_keys=True) if isinstance(k, (list, dict)) else k for k in keys]
    probs = pickscore_probabilities([r.get(column) for r in rows], keys)
    return [None if np.isnan(p) else float(p) for p in probs]


# ----------------------------------------------------------------------------------------------- the metric
class PickScore(Metric):
    name = "pickscore"
    summary = "PickScore v1: logit_scale.exp() x cosine of its CLIP-H image and prompt embeddings (about 18-24)"
    options = {"model": f"PickScore CLIPModel: hub id, hf:ID_OR_DIR, folder or demo (default: {DEFAULT_MODEL}; "
                        f"not --model)",
               "processor": f"tokenizer and image processor: hub id, hf:ID_OR_DIR, folder or demo (default: "
                            f"{DEFAULT_PROCESSOR})"}
    model_options = {"model": TRANSFORMERS, "processor": TRANSFORMERS}
    inherits = ()

    def __init__(self, **options: Any) -> None:
        if any(SEPARATOR in str(options.get(key) or "") for key in ("model", "processor")):
            raise UsageError(f"metric 'pickscore': model and processor cannot hold '{SEPARATOR}'")
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL).strip()
        self.processor = str(self.config.get("processor") or DEFAULT_PROCESSOR).strip()
        self.spec = pickscore_spec(self.model, self.processor)
        self._parts = parts(f"{self.model}{SEPARATOR}{self.processor}")
        self._image = Need("image_embedding", self.spec)
        self._text = Need("text_embedding", self.spec)
        self.scale: float | None = None
        self._files: list[dict[str, str]] | None = None

    def needs(self) -> list[Need]:
        return [self._image, self._text]

    def columns(self) -> list[Column]:
        return [Column("pickscore", description="PickScore v1: logit_scale.exp() x cos(image, prompt) of the "
                       "PickScore CLIP model; compare images of the same prompt", range=(None, None),
                       unit="logit_scale.exp() x cosine")]

    def setup(self, context: Any) -> None:
        """Read ``logit_scale.exp()`` from the shared model and hash its weight files."""
        import torch

        module = context.embedder(self.spec).encoder.module
        with torch.no_grad():
            self.scale = float(module.logit_scale.detach().float().cpu().exp())
        self.files()

    def compute(self, batch: MetricBatch) -> MetricOutput:
        if self.scale is None:
            raise RuntimeError("PickScore.setup was not called")
        cosine = unit_vectors_dot(batch.values[self._image], batch.values[self._text])
        return MetricOutput({"pickscore": self.scale * cosine})

    # ----------------------------------------------------------------- whole-run probability (proposed hook)
    def run_columns(self) -> list[Column]:
        """The column computed over the whole run, once every row is scored (see pipeline/finalize.py)."""
        return [Column("pickscore_prob", description="softmax of pickscore over the rows of the same prompt "
                       "(PickScore's preference probability)", range=(0.0, 1.0), unit="probability")]

    def finalize(self, values: dict[str, np.ndarray], groups: Sequence[Hashable]) -> dict[str, np.ndarray]:
        """``pickscore_prob`` from every row's ``pickscore`` and group key (its prompt), in row order."""
        return {"pickscore_prob": pickscore_probabilities(values["pickscore"], groups)}

    # ----------------------------------------------------------------- records
    def files(self) -> list[dict[str, str]]:
        """The model's weight files with their SHA-256, and the processor's config (hashed once): the file transformers
        read the image processor from (``processor_config.json`` or ``preprocessor_config.json``)."""
        if self._files is None:
            from ..encoders.builtin import processor_config_file, transformers_source
            from ..hashing import file_sha256

            model, processor = (transformers_source(p) for p in self._parts)
            found = [("weights", p) for p in weight_files(model)]
            config = processor_config_file(processor)  # the file transformers read the image processor from
            if config is not None:
                found.append(("processor_config", config))
            self._files = [{"role": role, "file": str(p), "sha256": file_sha256(p)} for role, p in found]
        return self._files

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        out = super().summarize(values, confidence)
        out["pickscore"] = {**out["pickscore"], "logit_scale_exp": self.scale, "model": self.model,
                            "processor": self.processor}
        return out

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "processor": self.processor, "spec": self.spec,
                "logit_scale_exp": self.scale, "files": self.files(), "recipe": RECIPE, "probability": PROBABILITY,
                "image_processor_backend": "PIL (CLIPImageProcessorPil; transformers' torchvision backend, which "
                                           "AutoProcessor may pick, differs by up to 0.015 per pixel)",
                "paper": "Kirstain et al. 2023, Pick-a-Pic: An Open Dataset of User Preferences for "
                         "Text-to-Image Generation"}

    def fingerprint(self) -> dict[str, Any]:
        weights = [f["sha256"] for f in self.files() if f["role"] == "weights"]
        return {**super().fingerprint(), "model": self.model, "processor": self.processor, "weights_sha256": weights}

"""Hugging Face ``transformers`` CLIP models, loaded the way their users load them.

Images go through ``CLIPImageProcessorPil`` (the original CLIP preprocessing with PIL: bicubic
resize of the shortest side, centre crop, rescale, normalise). transformers 5 otherwise picks a
torchvision backend whose pixels differ by up to 0.015, so the PIL one is chosen explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ModelLoadError
from .base import Encoder, Tokens


def _image_processor_class():
    import transformers

    # transformers >= 5 splits the PIL implementation out; 4.x's CLIPImageProcessor *is* the PIL one.
    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns an output object; 4.x a tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFEncoder(Encoder):
    """A ``transformers.CLIPModel`` from a hub id or a local folder."""

    family = "transformers"

    def __init__(self, source: str, *, spec: str | None = None, trust_remote_code: bool = False):
        from transformers import CLIPModel, CLIPTokenizer
        from transformers import logging as hf_logging

        self.spec = spec or source
        self.source = source
        hf_logging.disable_progress_bar()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            extra = {"trust_remote_code": True} if trust_remote_code else {}
            self.module = CLIPModel.from_pretrained(source, **extra).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(source, **extra)
            self.processor = _image_processor_class().from_pretrained(source)
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            raise ModelLoadError(_load_failure_message(source, exc)) from None
        finally:
            hf_logging.set_verbosity(verbosity)
        text_cfg = self.module.config.text_config
        self.context_length = int(text_cfg.max_position_embeddings)
        self._plan = self._fast_plan()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if self._plan is not None:
            return _clip_pil_preprocess(image, *self._plan)
        out = self.processor(images=image, return_tensors="pt")
        return out["pixel_values"][0]

    @property
    def input_size(self) -> int | None:
        size = dict(self.processor.size or {})
        return int(size["shortest_edge"]) if "shortest_edge" in size else None

    def _fast_plan(self) -> tuple | None:
        """Parameters for the direct re-implementation of the processor, when its settings are the usual ones.

        The direct path performs the very same operations as ``CLIPImageProcessorPil`` (PIL bicubic resize of
        the shortest edge with int() rounding of the long edge, centre crop, float64 rescale cast to float32,
        float32 normalise) without its per-call overhead; tests check it equals the processor's output.
        """
        p = self.processor
        size = dict(p.size or {})
        crop = dict(p.crop_size or {})
        standard = (
            p.do_resize and p.do_center_crop and p.do_rescale and p.do_normalize
            and set(size) == {"shortest_edge"} and set(crop) == {"height", "width"}
            and crop["height"] <= size["shortest_edge"] and crop["width"] <= size["shortest_edge"]
            and not getattr(p, "do_pad", False)
        )
        if not standard:
            return None
        mean = np.asarray(list(p.image_mean), dtype=np.float32)
        std = np.asarray(list(p.image_std), dtype=np.float32)
        return int(size["shortest_edge"]), int(crop["height"]), int(crop["width"]), int(p.resample), \
            float(p.rescale_factor), mean, std

    def tokenize(self, texts: list[str]) -> Tokens:
        n = self.context_length
        full = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=n, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return Tokens(inputs=inputs, truncated=[len(ids) > n for ids in full])

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.module.get_image_features(pixel_values=pixels))

    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return _features(self.module.get_text_features(**tokens))

    def preprocessing(self) -> dict[str, Any]:
        p = self.processor
        return {
            "implementation": f"transformers.{type(p).__name__} (PIL)",
            "resize": {"size": dict(p.size), "resample": "bicubic" if int(p.resample) == 3 else str(p.resample)},
            "center_crop": dict(p.crop_size) if p.do_center_crop else None,
            "rescale_factor": p.rescale_factor,
            "mean": list(p.image_mean),
            "std": list(p.image_std),
            "decode": "clipgauge.decode: EXIF transpose, alpha over white, 16-bit /257, first frame, RGB",
        }


def _clip_pil_preprocess(
    image: Image.Image, short: int, crop_h: int, crop_w: int, resample: int, scale: float,
    mean: np.ndarray, std: np.ndarray,
) -> torch.Tensor:
    w, h = image.size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    image = image.resize((new_w, new_h), resample=resample, reducing_gap=None)
    top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    # numpy, like the processor: exactly its float64 rescale → float32 → float32 normalise
    x = (np.asarray(image, dtype=np.uint8).astype(np.float64) * scale).astype(np.float32)
    x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _load_failure_message(source: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())
    local = Path(source).expanduser()
    if local.exists():
        return f"cannot load a transformers CLIP model from {local}: {text[:300]}"
    offline_words = ("connect", "offline", "resolve", "couldn't", "could not", "connection", "network")
    if any(w in text.lower() for w in offline_words) or "not a local folder" in text.lower():
        return (
            f"model '{source}' is not in the local Hugging Face cache and the hub cannot be reached; "
            f"download it where there is network (hf download {source}) and copy the cache, "
            "or point --model at a local copy: --model hf:/path/to/folder"
        )
    return f"cannot load model '{source}': {text[:300]}"

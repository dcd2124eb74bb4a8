"""Dual encoders that ship their own code on the hub (``auto_map`` in ``config.json``), e.g. ``jinaai/jina-clip-v2``.

Such a model is not a ``transformers.CLIPModel``: its ``config.json`` names its own classes (``auto_map``) and
its folder holds the Python code that defines them. transformers runs that code only when asked to
(``trust_remote_code=True``); so does clipgauge: ``--trust-remote-code`` / ``trust_remote_code=True``, else one
line saying so (:func:`remote_code_classes` finds out, without running anything).

Loaded the way the model's own card does: ``AutoModel.from_pretrained(..., trust_remote_code=True)``, its
tokenizer (``AutoTokenizer``) and image processor (``AutoImageProcessor``) from the same folder. Features are the
model's ``get_text_features(input_ids=…)`` and ``get_image_features(pixel_values=…)`` — what jina-clip's
``encode_text`` / ``encode_image`` compute before normalising (no task instruction, no Matryoshka truncation).
The text context is the tokenizer's ``model_max_length`` (8192 for jina-clip-v2), else the text config's
``max_position_embeddings``; longer prompts are truncated by the tokenizer and flagged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ModelLoadError
from .base import Encoder, Tokens
from .hf import _features

#: a tokenizer's ``model_max_length`` above this is transformers' "no limit" placeholder, not a context
_NO_LIMIT = 1_000_000


def remote_code_classes(config: dict[str, Any]) -> dict[str, str] | None:
    """The ``auto_map`` of a model config when the model ships its own code and is not a CLIP model transformers
    knows (``model_type`` ``clip``), else None."""
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict) or not auto_map or config.get("model_type") == "clip":
        return None
    return {str(k): str(v) for k, v in auto_map.items()}


def read_config(source: str) -> dict[str, Any] | None:
    """``config.json`` of a local folder or a hub id (from the local cache, else downloaded when the hub can be
    reached); None when it cannot be had (the normal load then reports why)."""
    local = Path(source).expanduser()
    path: Any = local / "config.json" if local.is_dir() else None
    if path is None:
        try:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache

            from .hub import hub_unreachable, quiet_loading

            path = try_to_load_from_cache(source, "config.json")
            if not isinstance(path, str) and not hub_unreachable(source, ["config.json"]):
                with quiet_loading():
                    path = hf_hub_download(source, "config.json")
        except Exception:  # noqa: BLE001 - not a hub id, not there: the normal load says what is wrong
            return None
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def refuse_without_trust(spec: str, auto_map: dict[str, str]) -> ModelLoadError:
    """The one line for a model with its own code loaded without trusting it."""
    model_class = auto_map.get("AutoModel") or next(iter(auto_map.values()))
    return ModelLoadError(
        f"model '{spec}' runs its own code ({model_class}, from its config.json auto_map); load it only if you "
        f"trust that code, with trust_remote_code=True",
        cli=f"model '{spec}' runs its own code ({model_class}, from its config.json auto_map); load it only if you "
            f"trust that code, with --trust-remote-code")


class RemoteCodeEncoder(Encoder):
    """A dual encoder defined by its own hub code (jina-clip-v1/v2 and models with the same API)."""

    family = "transformers-remote-code"

    def __init__(self, source: str, *, spec: str | None = None):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers import logging as hf_logging

        from .hub import quiet_loading

        self.spec = spec or source
        self.source = source
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            with quiet_loading():
                self.module = AutoModel.from_pretrained(source, trust_remote_code=True).float().eval()
                self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
                self.processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=True)
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            text = " ".join(str(exc).split())[:300]
            raise ModelLoadError(f"cannot load model '{self.spec}' with its own code: {type(exc).__name__}: {text}") \
                from None
        finally:
            hf_logging.set_verbosity(verbosity)
        for name in ("get_text_features", "get_image_features"):
            if not callable(getattr(self.module, name, None)):
                raise ModelLoadError(f"model '{self.spec}' ({type(self.module).__name__}) has no {name}: clipgauge "
                                     "scores dual encoders with get_text_features and get_image_features")
        self.context_length = self._context()

    def _context(self) -> int:
        limit = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        if 0 < limit < _NO_LIMIT:
            return limit
        text_cfg = getattr(self.module.config, "text_config", None)
        found = getattr(text_cfg, "max_position_embeddings", None) if text_cfg is not None else None
        return int(found or 512)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return torch.as_tensor(self.processor(images=[image], return_tensors="pt")["pixel_values"][0])

    def tokenize(self, texts: list[str], languages: Any = None) -> Tokens:
        n = self.context_length
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=n, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return Tokens(inputs=inputs, truncated=[k > n for k in self.token_counts(texts)])

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.module.get_image_features(pixel_values=pixels))

    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return _features(self.module.get_text_features(input_ids=tokens["input_ids"],
                                                        attention_mask=tokens.get("attention_mask")))

    def preprocessing(self) -> dict[str, Any]:
        p = self.processor
        return {
            "implementation": f"the model's own image processor ({type(p).__module__}.{type(p).__name__}, remote code)",
            "processor": {k: v for k, v in p.to_dict().items() if isinstance(v, (int, float, str, list, dict, bool))},
            "model_class": f"{type(self.module).__module__}.{type(self.module).__name__}",
            "text": f"{type(self.tokenizer).__name__}, max {self.context_length} tokens; get_text_features(input_ids)",
            "decode": "clipgauge.decode: EXIF transpose, alpha over white, 16-bit /257, first frame, RGB",
        }

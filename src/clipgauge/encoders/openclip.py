"""OpenCLIP models through the ``open_clip_torch`` library (optional extra ``clipgauge[openclip]``).

Loaded with ``open_clip.create_model_and_transforms`` and ``open_clip.get_tokenizer``, exactly as
OpenCLIP's users do; images go through the model's own evaluation transform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ModelLoadError, UsageError
from .base import Encoder, Tokens


class OpenCLIPEncoder(Encoder):
    """``open_clip:ARCH:PRETRAINED`` (tag or local checkpoint) or ``open_clip:hf-hub:ORG/NAME``."""

    family = "open_clip"

    def __init__(self, arch: str, pretrained: str | None, *, spec: str):
        try:
            import open_clip
        except ImportError:
            raise UsageError(
                f"model '{spec}' needs OpenCLIP: pip install 'clipgauge[openclip]'"
            ) from None
        self.spec = spec
        self.arch = arch
        self.pretrained = pretrained
        if pretrained and Path(pretrained).expanduser().exists():
            pretrained = str(Path(pretrained).expanduser())
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
            self.tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            raise ModelLoadError(_load_failure_message(spec, arch, pretrained, exc)) from None
        self.module = model.eval()
        self.transform = preprocess
        self.context_length = int(getattr(self.tokenizer, "context_length", None) or model.context_length)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    @property
    def input_size(self) -> int | None:
        size = getattr(self.module.visual, "image_size", None)
        return int(min(size)) if isinstance(size, (tuple, list)) else (int(size) if size else None)

    def tokenize(self, texts: list[str]) -> Tokens:
        ids = self.tokenizer(texts, context_length=self.context_length)
        return Tokens(inputs={"text": ids}, truncated=[self._n_tokens(t) > self.context_length for t in texts])

    def _n_tokens(self, text: str) -> int:
        """Length of the untruncated token sequence, start and end tokens included."""
        tok = self.tokenizer
        if hasattr(tok, "encode") and hasattr(tok, "sot_token_id"):  # open_clip.SimpleTokenizer
            return len(tok.encode(text)) + 2
        inner = getattr(tok, "tokenizer", None)  # open_clip.HFTokenizer wraps a transformers tokenizer
        if inner is not None:
            return len(inner(text, truncation=False)["input_ids"])
        return 0

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels)

    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module.encode_text(tokens["text"])

    def preprocessing(self) -> dict[str, Any]:
        return {
            "implementation": "open_clip create_model_and_transforms (eval transform)",
            "transform": repr(self.transform),
            "decode": "clipgauge.decode: EXIF transpose, alpha over white, 16-bit /257, first frame, RGB",
        }


def _load_failure_message(spec: str, arch: str, pretrained: str | None, exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "Unknown model" in text or "not found" in text.lower() and arch in text:
        return f"unknown OpenCLIP architecture '{arch}' in '{spec}' (see open_clip.list_models())"
    if pretrained and not Path(pretrained).exists() and not arch.startswith("hf-hub:"):
        try:
            import open_clip

            tags = open_clip.list_pretrained_tags_by_model(arch)
        except Exception:  # noqa: BLE001
            tags = []
        if tags and pretrained not in tags:
            return f"'{pretrained}' is neither a local checkpoint nor a pretrained tag of {arch} ({', '.join(tags)})"
    offline_words = ("connect", "offline", "resolve", "couldn't", "could not", "connection", "network", "hub")
    if any(w in text.lower() for w in offline_words):
        return (
            f"OpenCLIP weights for '{spec}' are not in the local cache and cannot be downloaded; "
            "download them where there is network, or point at a local checkpoint: "
            f"--model open_clip:{arch}:/path/to/checkpoint.safetensors"
        )
    return f"cannot load OpenCLIP model '{spec}': {text[:300]}"

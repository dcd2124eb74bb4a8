"""OpenCLIP models through the ``open_clip_torch`` library (optional extra ``clipgauge[openclip]``).

Loaded with ``open_clip.create_model_and_transforms`` and ``open_clip.get_tokenizer``, exactly as
OpenCLIP's users do; images go through the model's own evaluation transform. When that transform is the
standard CLIP chain (see :mod:`.openclip_plan`), it runs as a :class:`~.crop_plan.CropPlan` instead: uint8
crops in the decode workers, normalisation per batch on the device, bit-identical to the transform.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ModelLoadError, UsageError
from .base import Encoder, Tokens
from .crop_plan import CropPlan
from .hub import hub_unreachable, quiet_loading
from .openclip_plan import plan_from_transform


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
            with quiet_loading():
                if _weights_unreachable(open_clip, arch, pretrained):
                    message, cli = _offline_message(spec, arch)
                    raise ModelLoadError(message, cli=cli)
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
                self.tokenizer = open_clip.get_tokenizer(arch)
        except ModelLoadError as exc:
            raise ModelLoadError(str(exc), cli=exc.cli) from None
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            message, cli = _load_failure_message(spec, arch, pretrained, exc)
            raise ModelLoadError(message, cli=cli) from None
        self.module = model.eval()
        self.transform = preprocess
        self.context_length = int(getattr(self.tokenizer, "context_length", None) or model.context_length)
        self._plan = plan_from_transform(preprocess)
        inner = getattr(self.tokenizer, "tokenizer", None)  # open_clip.HFTokenizer wraps a transformers tokenizer
        self.needs_language = inner is not None and callable(getattr(inner, "set_src_lang_special_tokens", None))
        self._language_lock = threading.Lock()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if self._plan is not None:
            return self._plan.preprocess(image)
        return self.transform(image)

    @property
    def crop_plan(self) -> CropPlan | None:
        """The transform as two exact stages, when it is the standard chain (else None: per-image transform)."""
        return self._plan

    @property
    def input_size(self) -> int | None:
        if self._plan is not None:
            return self._plan.short
        size = getattr(self.module.visual, "image_size", None)
        return int(min(size)) if isinstance(size, (tuple, list)) else (int(size) if size else None)

    def tokenize(self, texts: list[str], languages: Sequence[str | None] | None = None) -> Tokens:
        """open_clip's tokenizer; for NLLB-CLIP each text in its own language (see :meth:`_tokenize_languages`)."""
        if self.needs_language and languages is not None and any(languages):
            return self._tokenize_languages(texts, list(languages))
        ids = self.tokenizer(texts, context_length=self.context_length)
        return Tokens(inputs={"text": ids}, truncated=[self._n_tokens(t) > self.context_length for t in texts])

    def _tokenize_languages(self, texts: list[str], languages: list[str | None]) -> Tokens:
        """NLLB-CLIP: the texts of each FLORES-200 code tokenised with the tokenizer's source language set to it.

        open_clip's ``HFTokenizer.set_language`` calls ``set_src_lang_special_tokens``, which transformers'
        ``NllbTokenizer`` undoes at the start of every call (``_switch_to_input_mode`` restores ``src_lang``): the
        language token would stay ``eng_Latn``. Setting ``src_lang`` is transformers' documented way, and what
        ``NllbTokenizer.from_pretrained(..., src_lang=CODE)`` does.
        """
        inner = self.tokenizer.tokenizer
        ids = torch.zeros((len(texts), self.context_length), dtype=torch.long)
        truncated = [False] * len(texts)
        groups: dict[str | None, list[int]] = {}
        for i, code in enumerate(languages):
            groups.setdefault(code, []).append(i)
        with self._language_lock:  # src_lang is tokenizer state
            before = inner.src_lang
            try:
                for code, rows in groups.items():
                    inner.src_lang = code or before
                    group = [texts[i] for i in rows]
                    ids[rows] = self.tokenizer(group, context_length=self.context_length)
                    for i, t in zip(rows, group):
                        truncated[i] = self._n_tokens(t) > self.context_length
            finally:
                inner.src_lang = before
        return Tokens(inputs={"text": ids}, truncated=truncated)

    def token_counts(self, texts: list[str]) -> list[int]:
        return [self._n_tokens(t) for t in texts]

    def _n_tokens(self, text: str) -> int:
        """Length of the untruncated token sequence, start and end tokens included."""
        tok = self.tokenizer
        if hasattr(tok, "encode") and hasattr(tok, "sot_token_id"):  # open_clip.SimpleTokenizer
            return len(tok.encode(text)) + 2
        inner = getattr(tok, "tokenizer", None)  # open_clip.HFTokenizer wraps a transformers tokenizer
        if inner is not None:
            text = tok.clean_fn(text) if callable(getattr(tok, "clean_fn", None)) else text
            if getattr(tok, "tokenizer_mode", "") == "clips":  # bos + text + eos, then a class token at the end
                return len(inner(text, add_special_tokens=False, truncation=False)["input_ids"]) + 3
            return len(inner(text, truncation=False, verbose=False)["input_ids"])
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


def _weights_unreachable(open_clip: Any, arch: str, pretrained: str | None) -> bool:
    """True when the model's files are on the hub, not in the local cache, and the hub cannot be reached."""
    if arch.startswith("hf-hub:"):
        return hub_unreachable(arch[len("hf-hub:"):], ["open_clip_config.json"])
    if not pretrained or Path(pretrained).exists():
        return False
    try:
        hub = (open_clip.get_pretrained_cfg(arch.replace("/", "-"), pretrained) or {}).get("hf_hub") or ""
    except Exception:  # noqa: BLE001 - not a tag: the load says what
        return False
    repo, filename = hub.rstrip("/"), "open_clip_pytorch_model.bin"
    if not hub.endswith("/"):
        repo, _, filename = hub.rpartition("/")
    if not repo:
        return False  # downloaded from a URL, not the hub
    stem = filename.rsplit(".", 1)[0]
    names = [f"{stem}.safetensors".replace("pytorch_model", "model"), f"{stem}.safetensors", filename]
    return hub_unreachable(repo, list(dict.fromkeys(names)))


def _offline_message(spec: str, arch: str) -> tuple[str, str]:
    """(library message, command-line message) for weights not cached while the hub cannot be reached."""
    target = "open_clip:ARCH" if arch.startswith("hf-hub:") else f"open_clip:{arch}"
    start = (f"OpenCLIP weights for '{spec}' are not in the local cache and cannot be downloaded; "
             "download them where there is network, or point at a local checkpoint: ")
    checkpoint = f"{target}:/path/to/checkpoint.safetensors"
    return start + checkpoint, start + f"--model {checkpoint}"


def _load_failure_message(spec: str, arch: str, pretrained: str | None, exc: Exception) -> tuple[str, str | None]:
    """(library message, command-line message or None when the same)."""
    text = " ".join(str(exc).split())
    if "Unknown model" in text or "not found" in text.lower() and arch in text:
        return f"unknown OpenCLIP architecture '{arch}' in '{spec}' (see open_clip.list_models())", None
    if pretrained and not Path(pretrained).exists() and not arch.startswith("hf-hub:"):
        try:
            import open_clip

            tags = open_clip.list_pretrained_tags_by_model(arch)
        except Exception:  # noqa: BLE001
            tags = []
        if tags and pretrained not in tags:
            return (f"'{pretrained}' is neither a local checkpoint nor a pretrained tag of {arch} "
                    f"({', '.join(tags)})"), None
    offline_words = ("connect", "offline", "resolve", "couldn't", "could not", "connection", "network", "hub")
    if any(w in text.lower() for w in offline_words):
        return _offline_message(spec, arch)
    return f"cannot load OpenCLIP model '{spec}': {text[:300]}", None

"""The one small interface every model family implements.

An encoder turns decoded RGB images and prompt strings into *unnormalised* feature vectors,
exactly as the model family's own code does; the scorer L2-normalises them and takes cosines.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image


@dataclass
class Tokens:
    """Tokenised prompts: model inputs plus, per prompt, whether it was longer than the context."""

    inputs: dict[str, torch.Tensor]
    truncated: list[bool]


class Encoder(ABC):
    """A CLIP-style dual encoder of one model family (transformers, OpenCLIP, …)."""

    #: the user's model spec, e.g. ``openai/clip-vit-large-patch14`` or ``open_clip:ViT-B-32:openai``
    spec: str
    #: family name written to provenance: ``transformers`` or ``open_clip``
    family: str
    #: the text context in tokens (77 for CLIP); longer prompts are truncated, keeping end-of-text
    context_length: int
    module: torch.nn.Module

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own preprocessing of one RGB image: a float32 tensor (3, H, W)."""

    @abstractmethod
    def tokenize(self, texts: list[str]) -> Tokens:
        """Tokenise exactly as the model's tokenizer does, truncating to ``context_length``."""

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features (N, D), not normalised, for a batch of preprocessed images."""

    @abstractmethod
    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Text features (N, D), not normalised, for tokenised prompts."""

    @abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """A description of the image preprocessing for provenance (sizes, interpolation, mean/std)."""

    @property
    def input_size(self) -> int | None:
        """The shortest image side the preprocessing resizes to (used by the opt-in fast JPEG decode)."""
        return None

    def to(self, device: torch.device) -> Encoder:
        self.module.to(device)
        return self

    def weights_sha256(self) -> str:
        """SHA-256 over the model's state dict (names, dtypes, shapes and bytes, sorted by name).

        Independent of the file format on disk: the same weights saved as safetensors or a
        PyTorch pickle give the same hash.
        """
        cached = getattr(self, "_weights_sha256", None)
        if cached is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.module.state_dict().items()):
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            cached = self._weights_sha256 = h.hexdigest()
        return cached

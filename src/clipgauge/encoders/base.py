"""The one small interface every model family implements.

An encoder turns decoded RGB images and prompt strings into *unnormalised* feature vectors,
exactly as the model family's own code does; the scorer L2-normalises them and takes cosines.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from .attention import with_genuine_attention

#: class names of CLIP's English BPE tokenizers (see :attr:`Encoder.languages`)
ENGLISH_TOKENIZERS = frozenset({"CLIPTokenizer", "CLIPTokenizerFast", "SimpleTokenizer"})


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
    #: True when the tokenizer needs each prompt's language (NLLB: a FLORES-200 language token); the scorer then
    #: passes ``languages`` to :meth:`tokenize` and keys its cached text embeddings by (prompt, language)
    needs_language: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Run every subclass's forward passes with torch's own attention, even where the process patched it
        (SageAttention): see :mod:`clipgauge.encoders.attention`."""
        super().__init_subclass__(**kwargs)
        for name in ("encode_images", "encode_texts"):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, name, with_genuine_attention(method))

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own preprocessing of one RGB image: a float32 tensor (3, H, W)."""

    @abstractmethod
    def tokenize(self, texts: list[str], languages: Sequence[str | None] | None = None) -> Tokens:
        """Tokenise exactly as the model's tokenizer does, truncating to ``context_length``.

        *languages*: one FLORES-200 code per text (None: the tokenizer's default), passed only to encoders that
        declare :attr:`needs_language`; the others may leave the argument out of their signature.
        """

    def token_counts(self, texts: list[str]) -> list[int] | None:
        """The untruncated token count of each text, start and end tokens included — what :meth:`tokenize`
        compares with ``context_length`` for its ``truncated`` flag — or None where this encoder cannot count
        without tokenising (then ask :meth:`tokenize`)."""
        return None

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
    def crop_plan(self) -> Any:
        """Preprocessing split in two exact stages, or None (then :meth:`preprocess` runs per image).

        When set, it has ``crop(image) -> uint8 (H, W, 3) array`` (run in the decode workers) and
        ``normalize(uint8 (N, H, W, 3) tensor) -> float32 (N, 3, H, W)`` (run per batch on the model's
        device), and ``normalize(crop(x)[None])[0]`` equals :meth:`preprocess` bit for bit.
        """
        return None

    @property
    def languages(self) -> str:
        """``"en"`` when the text tower reads English only, ``"multilingual"`` otherwise.

        The default decides from the tokenizer (``self.tokenizer``, or the transformers tokenizer an OpenCLIP
        ``HFTokenizer`` wraps): CLIP's English byte-pair vocabulary (transformers ``CLIPTokenizer`` /
        ``CLIPTokenizerFast``, OpenCLIP ``SimpleTokenizer``: OpenAI CLIP, the English LAION and DataComp models,
        the demo model) is ``"en"``; any other tokenizer (XLM-R, NLLB, mT5 SentencePiece…) is ``"multilingual"``.
        An encoder whose tokenizer says nothing about its training data overrides this property.
        """
        tok = getattr(self, "tokenizer", None)
        tok = getattr(tok, "tokenizer", tok)
        return "en" if type(tok).__name__ in ENGLISH_TOKENIZERS else "multilingual"

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
            thread, box = getattr(self, "_hash_job", (None, {}))
            if thread is not None:
                thread.join()
            cached = box.get("sha256") or _state_dict_sha256(_cpu_state(self.module))
            self._weights_sha256 = cached
        return cached

    def start_weights_hash(self) -> None:
        """Compute :meth:`weights_sha256` in a background thread (it reads every weight: ~0.6 s for ViT-B/32).

        The thread hashes a snapshot of the current tensors, so moving the model afterwards is safe.
        """
        if getattr(self, "_weights_sha256", None) is not None or getattr(self, "_hash_job", None) is not None:
            return
        state, box = _cpu_state(self.module), {}

        def job() -> None:
            box["sha256"] = _state_dict_sha256(state)

        thread = threading.Thread(target=job, name="clipgauge-weights-hash", daemon=True)
        self._hash_job = (thread, box)
        thread.start()


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").contiguous() for name, t in module.state_dict().items()}


def _state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))  # no copy; hashlib releases the GIL
    return h.hexdigest()

"""Hugging Face ``transformers`` CLIP models, loaded the way their users load them.

Images go through ``CLIPImageProcessorPil`` (the original CLIP preprocessing with PIL: bicubic
resize of the shortest side, centre crop, rescale, normalise). transformers 5 otherwise picks a
torchvision backend whose pixels differ by up to 0.015, so the PIL one is chosen explicitly.

A hub id that is not in the local cache while the hub cannot be reached fails fast with clipgauge's one
line: one quick request first (no retries), and huggingface_hub's own log lines silenced during the load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ModelLoadError
from .base import Encoder, Tokens
from .clip_pil import ClipPilPlan
from .hub import hub_unreachable, quiet_loading


def _image_processor_class():
    import transformers

    # transformers >= 5 splits the PIL implementation out; 4.x's CLIPImageProcessor *is* the PIL one.
    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns an output object; 4.x a tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFEncoder(Encoder):
    """A ``transformers.CLIPModel`` from a hub id or a local folder.

    *processor*: the hub id or folder of the tokenizer and image processor when they are not the model's own
    (PickScore v1 uses those of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``); None (the default) loads them from
    *source*, as before. *labels*: ``(model, processor)``, the options that named them (``pickscore:model=DIR``),
    put before a failure's one line so that it says which option to fix.
    """

    family = "transformers"

    def __init__(self, source: str, *, spec: str | None = None, trust_remote_code: bool = False,
                 processor: str | None = None, labels: tuple[str, str] | None = None):
        from transformers import logging as hf_logging

        self.spec = spec or source
        self.source = source
        self.processor_source = processor
        self._labels = labels
        hf_logging.disable_progress_bar()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            with quiet_loading():
                if not Path(source).expanduser().exists() and hub_unreachable(source, ["config.json"]):
                    message, cli = _unreachable_message(source)
                    raise ModelLoadError(message, cli=cli)
                if processor is not None and not Path(processor).expanduser().exists() and hub_unreachable(
                        processor, ["preprocessor_config.json", "processor_config.json"]):
                    raise ModelLoadError(self._label(
                        1, f"the tokenizer and image processor '{processor}' of model '{self.spec}' are not in the "
                           f"local Hugging Face cache and the hub cannot be reached; download them where there is "
                           f"network (hf download {processor}) and copy the cache, or give a local copy of the folder"))
                self._load(source, trust_remote_code)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            message, cli = _load_failure_message(source, exc)
            raise ModelLoadError(self._label(0, message), cli=None if self._labels else cli) from None
        finally:
            hf_logging.set_verbosity(verbosity)
        text_cfg = self.module.config.text_config
        self.context_length = int(text_cfg.max_position_embeddings)
        self._plan = ClipPilPlan.from_processor(self.processor)

    def _load(self, source: str, trust_remote_code: bool) -> None:
        from transformers import CLIPModel, CLIPTokenizer

        extra = {"trust_remote_code": True} if trust_remote_code else {}
        self.module = CLIPModel.from_pretrained(source, **extra).eval()
        if self.processor_source is None:
            self.tokenizer = CLIPTokenizer.from_pretrained(source, **extra)
            self.processor = _image_processor_class().from_pretrained(source)
            return
        processor = str(Path(self.processor_source).expanduser()) if Path(
            self.processor_source).expanduser().exists() else self.processor_source
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(processor, **extra)
            self.processor = _image_processor_class().from_pretrained(processor)
        except Exception as exc:  # noqa: BLE001 - name the processor, not the model, in the one line
            text = " ".join(str(exc).split())[:300]
            raise ModelLoadError(self._label(1, f"cannot load the tokenizer and image processor{self._of()} from "
                                                f"'{self.processor_source}': {text}")) from None
        if len(self.tokenizer) < 256:  # transformers 5 builds an empty tokenizer where the vocabulary is missing
            raise ModelLoadError(self._label(
                1, f"the tokenizer{self._of()} in '{self.processor_source}' has no vocabulary "
                   f"({len(self.tokenizer)} tokens: vocab.json and merges.txt, or tokenizer.json, are missing)"))

    def _label(self, which: int, message: str) -> str:
        """*message* after the option that named the model (0) or the processor (1), when known."""
        return f"{self._labels[which]}: {message}" if self._labels else message

    def _of(self) -> str:
        return "" if self._labels else f" of '{self.spec}'"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if self._plan is not None:
            return self._plan.preprocess(image)
        out = self.processor(images=image, return_tensors="pt")
        return out["pixel_values"][0]

    @property
    def crop_plan(self) -> ClipPilPlan | None:
        """The direct, bit-identical re-implementation of the processor (None for non-standard settings)."""
        return self._plan

    @property
    def input_size(self) -> int | None:
        size = dict(self.processor.size or {})
        return int(size["shortest_edge"]) if "shortest_edge" in size else None

    def tokenize(self, texts: list[str]) -> Tokens:
        n = self.context_length
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=n, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return Tokens(inputs=inputs, truncated=[k > n for k in self.token_counts(texts)])

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]]

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
        } | ({"processor_source": self.processor_source} if self.processor_source is not None else {})


def _unreachable_message(source: str) -> tuple[str, str]:
    """(library message, command-line message) for a hub model that is not cached while the hub is unreachable."""
    start = (f"model '{source}' is not in the local Hugging Face cache and the hub cannot be reached; "
             f"download it where there is network (hf download {source}) and copy the cache, ")
    return (start + "or load a local copy: hf:/path/to/folder",
            start + "or point --model at a local copy: --model hf:/path/to/folder")


def _load_failure_message(source: str, exc: Exception) -> tuple[str, str | None]:
    """(library message, command-line message or None when the same)."""
    text = " ".join(str(exc).split())
    local = Path(source).expanduser()
    if local.exists():
        return f"cannot load a transformers CLIP model from {local}: {text[:300]}", None
    offline_words = ("connect", "offline", "resolve", "couldn't", "could not", "connection", "network")
    if any(w in text.lower() for w in offline_words) or "not a local folder" in text.lower():
        return _unreachable_message(source)
    return f"cannot load model '{source}': {text[:300]}", None

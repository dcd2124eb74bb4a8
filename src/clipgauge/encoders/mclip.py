"""M-CLIP (Carlsson et al. 2022, ``multilingual-clip``): a multilingual text tower distilled into a CLIP's text
space, paired with the image tower of the CLIP it was trained against.

Spec: ``mclip:NAME`` or ``mclip:NAME,image=SPEC``. NAME is a hub id (``M-CLIP/XLM-Roberta-Large-Vit-L-14``) or a
local folder in the published layout of ``multilingual_clip.pt_multilingual_clip.MultilingualCLIP``:

* ``config.json`` (model type ``M-CLIP``): ``modelBase`` (the transformer's hub id or folder, e.g.
  ``xlm-roberta-large``), ``transformerDimensions`` (its width), ``numDims`` (the CLIP embedding width);
* ``pytorch_model.bin`` or ``model.safetensors``: ``transformer.*`` (the whole ``AutoModel`` of ``modelBase``) and
  ``LinearTransformation.{weight,bias}``;
* the tokenizer files (``AutoTokenizer.from_pretrained(NAME)``).

The text embedding is that package's forward: the transformer's last hidden states averaged over the attention
mask, then the linear map. Only ``modelBase``'s configuration is read (its weights are all in the checkpoint).
Prompts longer than the tokenizer's ``model_max_length`` (512 for XLM-R) are truncated, and flagged.

The image tower is any clipgauge spec: by default the OpenAI CLIP each published M-CLIP model was trained against
(:data:`~.mclip_family.MCLIP_IMAGE_TOWERS`); ``image=SPEC`` overrides it, and is required for a model not in that table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ModelLoadError
from .base import Encoder, Tokens
from .hub import hub_unreachable, quiet_loading
from .weights import read_weights


class MCLIPEncoder(Encoder):
    """An M-CLIP text tower (transformers ``AutoModel`` + mean pooling + linear) with a CLIP image tower."""

    family = "mclip"

    def __init__(self, source: str, image: Encoder, *, spec: str):
        self.spec = spec
        self.source = source
        self.image = image
        local = Path(source).expanduser()
        where = str(local) if local.exists() else source
        try:
            with quiet_loading():
                if not local.exists() and hub_unreachable(source, ["config.json"]):
                    raise ModelLoadError(
                        f"M-CLIP model '{source}' is not in the local Hugging Face cache and the hub cannot be "
                        f"reached; download it where there is network (hf download {source}), or give a local "
                        f"copy: mclip:/path/to/folder")
                self._load(where)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            text = " ".join(str(exc).split())[:300]
            raise ModelLoadError(f"cannot load M-CLIP model '{source}': {type(exc).__name__}: {text}") from None
        self.module = torch.nn.ModuleDict({"transformer": self.transformer, "LinearTransformation": self.linear,
                                           "image": image.module}).eval()
        positions = getattr(self.transformer.config, "max_position_embeddings", 514)
        limit = int(getattr(self.tokenizer, "model_max_length", positions) or positions)
        self.context_length = min(limit, positions - 2 if positions > 2 else positions)

    def _load(self, where: str) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import cached_file

        config = json.loads(Path(cached_file(where, "config.json")).read_text(encoding="utf-8"))
        missing = [k for k in ("modelBase", "transformerDimensions", "numDims") if k not in config]
        if missing:
            raise ModelLoadError(f"'{where}' is not an M-CLIP model: its config.json lacks {', '.join(missing)}")
        self.config = config
        base = config["modelBase"]
        base_local = Path(base).expanduser()
        if not base_local.exists() and hub_unreachable(base, ["config.json"]):
            raise ModelLoadError(f"the configuration of M-CLIP's transformer '{base}' is not in the local Hugging "
                                 f"Face cache and the hub cannot be reached (hf download {base} config.json)")
        self.transformer = AutoModel.from_config(AutoConfig.from_pretrained(str(base_local) if base_local.exists()
                                                                            else base))
        self.linear = torch.nn.Linear(int(config["transformerDimensions"]), int(config["numDims"]))
        state = read_weights(_weight_file(where), "M-CLIP checkpoint")
        own = {k[len("transformer."):]: v for k, v in state.items() if k.startswith("transformer.")}
        expected = set(self.transformer.state_dict())
        own = {k: v for k, v in own.items() if k in expected or not k.endswith("position_ids")}  # old buffer
        self.transformer.load_state_dict(own, strict=True)
        self.linear.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()
                                     if k.startswith("LinearTransformation.")}, strict=True)
        self.tokenizer = AutoTokenizer.from_pretrained(where)

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: list[str]) -> Tokens:
        n = self.context_length
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=n, return_tensors="pt")
        return Tokens(inputs={"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
                      truncated=[k > n for k in self.token_counts(texts)])

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]]

    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """``MultilingualCLIP.forward``: last hidden states averaged over the attention mask, then the linear map."""
        att = tokens["attention_mask"]
        embs = self.transformer(input_ids=tokens["input_ids"], attention_mask=att)[0]
        embs = (embs * att.unsqueeze(2)).sum(dim=1) / att.sum(dim=1)[:, None]
        return self.linear(embs)

    # ------------------------------------------------------------------ images: the paired CLIP's
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.image.preprocess(image)

    @property
    def crop_plan(self) -> Any:
        return self.image.crop_plan

    @property
    def input_size(self) -> int | None:
        return self.image.input_size

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image.encode_images(pixels)

    def preprocessing(self) -> dict[str, Any]:
        return {**self.image.preprocessing(), "image_tower": self.image.spec,
                "text_tower": {"mclip": self.source, "modelBase": self.config["modelBase"],
                               "pooling": "mean over the attention mask, then LinearTransformation"}}


def _weight_file(where: str) -> Path:
    from transformers.utils import cached_file

    for name in ("model.safetensors", "pytorch_model.bin"):
        path = cached_file(where, name, _raise_exceptions_for_missing_entries=False)
        if path:
            return Path(path)
    raise ModelLoadError(f"M-CLIP model '{where}' has no model.safetensors or pytorch_model.bin")

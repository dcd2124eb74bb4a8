"""Long-CLIP's own OpenAI-format checkpoints (``longclip-B.pt``, ``longclip-L.pt``): ``longclip:PATH``.

Long-CLIP (Zhang et al. 2024, github.com/beichenzbc/Long-CLIP) fine-tunes OpenAI CLIP to a 248-token text
context. Its checkpoints are raw state dicts (``torch.save(model.state_dict())``) in OpenAI CLIP's key layout
(``visual.*``, ``transformer.resblocks.*``, ``token_embedding.weight``, ``ln_final.*``, ``text_projection``,
``logit_scale``) with **two** positional tables, both 248 × D::

    x = token_embedding(text) + positional_embedding * mask1 + positional_embedding_res * mask2
    mask1 = 1 on rows 0..19, else 0;   mask2 = 1 on rows 20..247, else 0

then the causal transformer, ``ln_final``, the end-of-text token's row (the highest token id) and
``text_projection`` (``model/model_longclip.py``, ``CLIP.encode_text``). Because the masks are 0/1, that sum is
exactly ``token_embedding + table`` with ``table`` = rows 0–19 of the first and rows 20–247 of the second, so
the checkpoint is loaded as an OpenCLIP ``CLIP`` (the OpenAI architecture, QuickGELU, heads = width / 64) with
that single 248-row table. As ``longclip.load`` does (through Long-CLIP's ``build_model``, whose
``convert_weights`` casts them before ``load_state_dict``), the linear, convolution and attention weights and both
projections go through float16 before the model runs in float32, so the numbers are those of ``longclip.load`` on
CPU; for a checkpoint that stores those weights in float16 (OpenAI's layout) that cast changes nothing.

Prompts are tokenised with CLIP's BPE tokenizer at context 248 (``longclip.tokenize(..., truncate=True)``: cut
to 248 tokens, the last one made end-of-text). Images get Long-CLIP's ``_transform``: bicubic resize of the
shortest side, centre crop, OpenAI CLIP's mean and std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError, UsageError
from .openclip import OpenCLIPEncoder
from .openclip_plan import OPENAI_MEAN, OPENAI_STD, plan_from_transform

#: rows of ``positional_embedding`` kept as they are (``mask1``); the rest come from ``positional_embedding_res``
KEEP_ROWS = 20
#: Long-CLIP's text context in tokens
LONGCLIP_CONTEXT = 248


def merge_positional_tables(state: dict[str, torch.Tensor], keep: int = KEEP_ROWS) -> dict[str, torch.Tensor]:
    """A copy of a Long-CLIP state dict whose ``positional_embedding`` is rows ``0..keep-1`` of the first table and
    rows ``keep..`` of ``positional_embedding_res`` (which is removed). :class:`ValueError` when the tables are
    missing or their shapes differ."""
    if "positional_embedding_res" not in state or "positional_embedding" not in state:
        raise ValueError("not a Long-CLIP checkpoint: it needs both 'positional_embedding' and "
                         "'positional_embedding_res' (an OpenAI CLIP checkpoint loads with open_clip:ARCH:PATH)")
    first, res = state["positional_embedding"], state["positional_embedding_res"]
    if first.shape != res.shape or first.ndim != 2 or first.shape[0] <= keep:
        raise ValueError(f"positional tables of shapes {tuple(first.shape)} and {tuple(res.shape)}: Long-CLIP's "
                         f"are both (248, width)")
    out = {k: v for k, v in state.items() if k != "positional_embedding_res"}
    out["positional_embedding"] = torch.cat([first[:keep], res[keep:].to(first.dtype)], dim=0)
    return out


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in *path*: a raw state dict (Long-CLIP's format) or one nested under ``state_dict``."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - one line
        raise ModelLoadError(f"cannot read the Long-CLIP checkpoint {path}: {' '.join(str(exc).split())[:200]}") \
            from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path} is not a Long-CLIP checkpoint (a state dict of tensors)")
    return dict(obj)


def longclip_transform(size: int):
    """Long-CLIP's ``_transform(n_px)``: the original CLIP evaluation transform (torchvision, PIL input)."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                    _convert_image_to_rgb, ToTensor(), Normalize(OPENAI_MEAN, OPENAI_STD)])


def _convert_image_to_rgb(image: Any) -> Any:
    return image.convert("RGB")


class LongCLIPEncoder(OpenCLIPEncoder):
    """A Long-CLIP checkpoint (``longclip:PATH``), run as the OpenCLIP ``CLIP`` it is (see the module doc)."""

    family = "longclip"

    def __init__(self, path: str, *, spec: str):  # noqa: D107 - does not call OpenCLIPEncoder's loader
        try:
            import open_clip
            from open_clip.model import build_model_from_openai_state_dict
            from open_clip.tokenizer import SimpleTokenizer
        except ImportError:
            raise UsageError(f"model '{spec}' needs OpenCLIP: pip install 'clipgauge[openclip]'") from None
        file = Path(path).expanduser()
        if not file.is_file():
            raise ModelLoadError(f"Long-CLIP checkpoint {file} does not exist (download longclip-B.pt or "
                                 "longclip-L.pt from BeichenZhang/LongCLIP-B or -L)")
        self.spec = spec
        self.arch = "longclip"
        self.pretrained = str(file)
        try:
            state = merge_positional_tables(read_checkpoint(file))
            model = build_model_from_openai_state_dict(state, quick_gelu=True)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear line
            raise ModelLoadError(f"cannot load Long-CLIP checkpoint {file}: "
                                 f"{' '.join(str(exc).split())[:300]}") from None
        self.module = model.float().eval()
        self.context_length = int(self.module.positional_embedding.shape[0])
        self.tokenizer = SimpleTokenizer(context_length=self.context_length)
        size = self.module.visual.image_size
        self.transform = longclip_transform(int(size[0] if isinstance(size, (tuple, list)) else size))
        self._plan = plan_from_transform(self.transform)
        self._open_clip_version = open_clip.__version__

    def preprocessing(self) -> dict[str, Any]:
        return {
            "implementation": "Long-CLIP _transform (torchvision: bicubic resize, centre crop, OpenAI mean/std)",
            "transform": repr(self.transform),
            "text": f"CLIP BPE tokenizer, context {self.context_length} (longclip.tokenize, truncate=True); "
                    f"positional rows 0-{KEEP_ROWS - 1} from positional_embedding, {KEEP_ROWS}-"
                    f"{self.context_length - 1} from positional_embedding_res",
            "decode": "clipgauge.decode: EXIF transpose, alpha over white, 16-bit /257, first frame, RGB",
        }

"""The original CLIP image preprocessing (``CLIPImageProcessorPil``), split in two exact stages.

1. :meth:`ClipPilPlan.crop` — geometry, per image, in the decode workers: PIL bicubic resize of the
   shortest edge (long edge rounded down with ``int()``, as the processor does), centre crop; a uint8
   (H, W, 3) array, a quarter the memory of the float pixels.
2. :meth:`ClipPilPlan.normalize` — numbers, per batch, on the model's device: rescale and normalise.
   Every output value depends only on (uint8 value, channel), so it is a look-up in a 3 × 256 table
   computed with exactly the processor's arithmetic (float64 rescale → float32, float32 subtract and
   divide): bit-identical to the processor, and the batch crosses to a GPU as uint8.

A plan can also be read from a model's ``preprocessor_config.json`` before transformers is even
imported, so that images decode while the model loads; the scorer only uses what was decoded that way
after checking that the loaded processor gives the same plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

#: ``CLIPImageProcessorPil``'s defaults, for keys a config file leaves out.
_DEFAULTS = {"do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
             "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
             "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711]}


@dataclass(frozen=True)
class ClipPilPlan:
    """Parameters of the standard CLIP preprocessing: resize shortest edge, centre crop, rescale, normalise."""

    short: int
    crop_h: int
    crop_w: int
    resample: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_processor(cls, p: Any) -> ClipPilPlan | None:
        """The plan of a loaded ``CLIPImageProcessorPil``, or None when its settings are not the standard ones."""
        return cls._from_settings({k: getattr(p, k, None) for k in _DEFAULTS} | {"do_pad": getattr(p, "do_pad", False)})

    @classmethod
    def from_config_file(cls, path: str | Path) -> ClipPilPlan | None:
        """A provisional plan from a ``preprocessor_config.json`` (None when unreadable or not standard)."""
        try:
            cfg = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(cfg, dict):
            return None
        settings = {k: cfg.get(k, v) for k, v in _DEFAULTS.items()}
        # old configs give ints: size = shortest edge, crop_size = a square
        if isinstance(settings["size"], int):
            settings["size"] = {"shortest_edge": settings["size"]}
        if isinstance(settings["crop_size"], int):
            settings["crop_size"] = {"height": settings["crop_size"], "width": settings["crop_size"]}
        settings["do_pad"] = cfg.get("do_pad", False)
        return cls._from_settings(settings)

    @classmethod
    def _from_settings(cls, s: dict[str, Any]) -> ClipPilPlan | None:
        try:
            size, crop = dict(s["size"] or {}), dict(s["crop_size"] or {})
            standard = (
                s["do_resize"] and s["do_center_crop"] and s["do_rescale"] and s["do_normalize"]
                and set(size) == {"shortest_edge"} and set(crop) == {"height", "width"}
                and crop["height"] <= size["shortest_edge"] and crop["width"] <= size["shortest_edge"]
                and not s["do_pad"] and len(s["image_mean"]) == 3 and len(s["image_std"]) == 3
            )
            if not standard:
                return None
            return cls(int(size["shortest_edge"]), int(crop["height"]), int(crop["width"]), int(s["resample"]),
                       float(s["rescale_factor"]), tuple(float(m) for m in s["image_mean"]),
                       tuple(float(x) for x in s["image_std"]))
        except (TypeError, ValueError, KeyError):
            return None

    # ------------------------------------------------------------------ stage 1: geometry
    def crop(self, image: Image.Image) -> np.ndarray:
        """Resize the shortest edge to ``short`` and centre-crop: uint8 (crop_h, crop_w, 3)."""
        w, h = image.size
        if w <= h:
            new_w, new_h = self.short, int(self.short * h / w)
        else:
            new_w, new_h = int(self.short * w / h), self.short
        image = image.resize((new_w, new_h), resample=self.resample, reducing_gap=None)
        top, left = (new_h - self.crop_h) // 2, (new_w - self.crop_w) // 2
        image = image.crop((left, top, left + self.crop_w, top + self.crop_h))
        return np.array(image, dtype=np.uint8)  # writable: torch.from_numpy needs that

    # ------------------------------------------------------------------ stage 2: numbers
    def table(self) -> np.ndarray:
        """(3, 256) float32: the normalised value of each uint8 level per channel, the processor's arithmetic."""
        levels = (np.arange(256, dtype=np.uint8).astype(np.float64) * self.scale).astype(np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None]
        return (levels[None, :] - mean) / std

    def normalize(self, crops: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (N, H, W, 3) crops → float32 (N, 3, H, W) model input, on the crops' device.

        *table* is :meth:`table` as a flat float32 tensor on that device (built when not given).
        """
        if table is None:
            table = torch.from_numpy(self.table().reshape(-1)).to(crops.device)
        offsets = torch.tensor([0, 256, 512], device=crops.device, dtype=torch.int32)
        index = crops.to(torch.int32) + offsets
        return table[index].permute(0, 3, 1, 2).contiguous()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Both stages for one image: float32 (3, crop_h, crop_w), equal to the processor's ``pixel_values[0]``."""
        return self.normalize(torch.from_numpy(self.crop(image))[None])[0]

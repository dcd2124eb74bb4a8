"""One description of the standard CLIP image preprocessing, which any model family can produce.

The recipe: resize the shortest side to ``short`` with PIL (bicubic or bilinear), centre-crop to
``crop_h`` × ``crop_w``, turn uint8 levels into floats, subtract ``mean`` and divide by ``std`` per channel.
It runs in two exact stages:

1. :meth:`CropPlan.crop` — geometry, per image, in the decode workers: a uint8 (H, W, 3) array, a quarter
   the memory of the float pixels.
2. :meth:`CropPlan.normalize` — numbers, per batch, on the model's device. Every output value depends
   only on (uint8 level, channel), so it is a look-up in a 3 × 256 table (:meth:`CropPlan.table`) computed
   with exactly the arithmetic of the family's own code: bit-identical to it, and the batch crosses to a
   GPU as uint8.

Families differ in two details, named by :attr:`CropPlan.arithmetic`:

* ``"transformers"`` (``CLIPImageProcessorPil``): crop offsets ``(size - crop) // 2``; levels rescaled in
  float64 (``level * scale``) then cast to float32, then float32 subtract and divide.
* ``"torchvision"`` (OpenCLIP's ``Resize`` → ``CenterCrop`` → ``ToTensor`` → ``Normalize``): crop offsets
  ``int(round((size - crop) / 2))`` (Python's round half to even); ``ToTensor`` divides float32 levels by
  255 in float32 (``scale`` is then 1/255 by definition), ``Normalize`` subtracts and divides in float32.

Both resize with ``PIL.Image.resize(size, resample)`` (``reducing_gap=None``) to a long side of
``int(short * long / short_side)``, as both libraries do.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

ARITHMETICS = ("transformers", "torchvision")
#: PIL resample filters a plan may use (the ones whose PIL output both families take as is).
RESAMPLE_NAMES = {2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True, eq=False)
class CropPlan:
    """Parameters of the standard CLIP preprocessing: resize shortest side, centre crop, rescale, normalise."""

    short: int
    crop_h: int
    crop_w: int
    resample: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arithmetic: str = "transformers"

    def __post_init__(self) -> None:
        if self.arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic must be one of {ARITHMETICS}, not {self.arithmetic!r}")

    # plans from different readers (subclasses) are equal when they describe the same pixels
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CropPlan):
            return NotImplemented
        return astuple(self) == astuple(other)

    def __hash__(self) -> int:
        return hash(astuple(self))

    # ------------------------------------------------------------------ stage 1: geometry
    def geometry(self, w: int, h: int) -> tuple[int, int, int, int]:
        """For a *w* × *h* picture: the resized size ``(new_w, new_h)`` and the crop's ``(top, left)`` in it."""
        if w <= h:
            new_w, new_h = self.short, int(self.short * h / w)
        else:
            new_w, new_h = int(self.short * w / h), self.short
        if self.arithmetic == "torchvision":  # torchvision.transforms.functional.center_crop
            top = int(round((new_h - self.crop_h) / 2.0))
            left = int(round((new_w - self.crop_w) / 2.0))
        else:
            top, left = (new_h - self.crop_h) // 2, (new_w - self.crop_w) // 2
        return new_w, new_h, top, left

    def crop(self, image: Image.Image) -> np.ndarray:
        """Resize the shortest side to ``short`` and centre-crop: uint8 (crop_h, crop_w, 3)."""
        new_w, new_h, top, left = self.geometry(*image.size)
        image = image.resize((new_w, new_h), resample=self.resample, reducing_gap=None)
        image = image.crop((left, top, left + self.crop_w, top + self.crop_h))
        if self.arithmetic == "torchvision" and image.mode != "RGB":
            image = image.convert("RGB")  # OpenCLIP converts after the crop (decoded images are RGB already)
        return np.array(image, dtype=np.uint8)  # writable: torch.from_numpy needs that

    # ------------------------------------------------------------------ stage 2: numbers
    def table(self) -> np.ndarray:
        """(3, 256) float32: the model input of each uint8 level per channel, in the family's arithmetic."""
        if self.arithmetic == "torchvision":
            # ToTensor: uint8 → float32, .div(255); Normalize: float32 .sub(mean).div(std) — the same torch ops
            levels = torch.arange(256, dtype=torch.uint8).to(torch.float32).div(255)
            mean = torch.as_tensor(self.mean, dtype=torch.float32).view(-1, 1)
            std = torch.as_tensor(self.std, dtype=torch.float32).view(-1, 1)
            return levels[None, :].sub(mean).div(std).numpy()
        levels = (np.arange(256, dtype=np.uint8).astype(np.float64) * self.scale).astype(np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None]
        return (levels[None, :] - mean) / std

    def normalize(self, crops: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (N, H, W, 3) crops → float32 (N, 3, H, W) model input, on the crops' device.

        Without *table*: element-wise arithmetic checked, once per device, to equal :meth:`table` bit for bit
        (:mod:`clipgauge.encoders.normalize`). *table*: :meth:`table` as a flat float32 tensor on that device,
        looked up.
        """
        if table is None:
            from .normalize import normalizer

            return normalizer(self, str(crops.device))(crops)
        offsets = torch.tensor([0, 256, 512], device=crops.device, dtype=torch.int32)
        index = crops.to(torch.int32) + offsets
        return table[index].permute(0, 3, 1, 2).contiguous()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Both stages for one image: float32 (3, crop_h, crop_w), equal to the family's own preprocessing."""
        return self.normalize(torch.from_numpy(self.crop(image))[None])[0]

    def describe(self) -> dict[str, Any]:
        """The plan in words, for provenance."""
        return {"resize_shortest_side": self.short, "resample": RESAMPLE_NAMES.get(self.resample, self.resample),
                "center_crop": [self.crop_h, self.crop_w], "mean": list(self.mean), "std": list(self.std),
                "arithmetic": self.arithmetic}

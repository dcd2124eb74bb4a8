"""The evaluation path's image preprocessing, written in torch so that gradients reach the pixels.

``clipgauge score`` preprocesses decoded uint8 images with each model family's own code (PIL resize, crop,
normalise: :mod:`clipgauge.encoders.crop_plan`; HPSv2's tensor resize and pad: :class:`~clipgauge.encoders.hpsv2.
HPSv2Transform`). A reward takes float images ``(B, 3, H, W)`` in ``[0, 1]`` instead and must not round them to
uint8 (that cuts the gradient), so it runs the same steps on tensors:

* :class:`ResizeCropNormalize`, for every family whose preprocessing is the standard CLIP chain (transformers'
  ``CLIPImageProcessorPil``, OpenCLIP's ``Resize → CenterCrop → ToTensor → Normalize``, the demo model,
  PickScore): the same output size and crop offsets as the PIL path (:meth:`CropPlan.geometry`), the resize done
  as PIL does it — a horizontal then a vertical pass, each clipped to ``[0, 1]`` as PIL clips each pass to
  uint8 — by ``F.interpolate(mode="bicubic" or "bilinear", antialias=True)``, whose antialiased kernels are PIL's
  (bicubic with a = −0.5, support scaled with the reduction); then ``(x − mean) / std``. Where no resize is
  needed (a 224 × 224 image for a 224 model) only the normalisation runs and the two paths agree to float
  rounding; where it is, they differ by PIL's rounding of each pass to uint8 (about 1 level of 255 at most, 0.25
  on average): the measured bounds, in pixels and in cosine, are in docs/rewards.md.
* :class:`ResizeLongestPadNormalize`, HPSv2's ``preprocess_val``: the eval path is already a tensor resize
  (bicubic, antialiased) and zero padding, so this is the same arithmetic on a batch.

:func:`torch_preprocess` picks one for a loaded :class:`~clipgauge.encoders.Encoder`, or refuses in one line.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..encoders.crop_plan import CropPlan
from ..errors import UsageError

_MODES = {3: "bicubic", 2: "bilinear"}


class ResizeCropNormalize(torch.nn.Module):
    """A :class:`~clipgauge.encoders.crop_plan.CropPlan` on float tensors: ``(B, 3, H, W)`` in ``[0, 1]`` →
    ``(B, 3, crop_h, crop_w)`` model input, differentiable, in the input's dtype and on its device."""

    def __init__(self, plan: CropPlan) -> None:
        super().__init__()
        if plan.resample not in _MODES:
            raise UsageError(f"no differentiable form of PIL resample filter {plan.resample} (bicubic and bilinear "
                             f"have one)")
        self.plan = plan
        self.register_buffer("mean", torch.tensor(plan.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(plan.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def size(self) -> tuple[int, int]:
        """The model input's (height, width) in pixels."""
        return self.plan.crop_h, self.plan.crop_w

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = int(images.shape[-2]), int(images.shape[-1])
        new_w, new_h, top, left = self.plan.geometry(width, height)
        x, mode = images, _MODES[self.plan.resample]
        # PIL's two passes, horizontal first, each clipped to the uint8 range (a pass is skipped where that side
        # keeps its length); PIL also rounds each pass to uint8, which is left out: it would cut the gradient
        if new_w != width:
            x = F.interpolate(x, size=(height, new_w), mode=mode, align_corners=False, antialias=True).clamp(0, 1)
        if new_h != height:
            x = F.interpolate(x, size=(new_h, new_w), mode=mode, align_corners=False, antialias=True).clamp(0, 1)
        x = x[:, :, top:top + self.plan.crop_h, left:left + self.plan.crop_w]
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def describe(self) -> dict[str, Any]:
        """The steps in words, for provenance and docs."""
        return {"steps": f"F.interpolate({_MODES[self.plan.resample]}, antialias=True) of the shortest side to "
                         f"{self.plan.short} (skipped when already that size), clamp to [0, 1], centre crop "
                         f"{self.plan.crop_h}x{self.plan.crop_w}, (x - mean) / std",
                "plan": self.plan.describe()}


class ResizeLongestPadNormalize(torch.nn.Module):
    """HPSv2's ``preprocess_val`` on a batch: bicubic antialiased resize so the longest side is *size* (sides
    ``round(side × size / longest)``; skipped when the longest side is already *size*), zero padding to a centred
    square (left/top get the smaller half), ``(x − mean) / std`` — the arithmetic of
    :class:`~clipgauge.encoders.hpsv2.HPSv2Transform` (torchvision's tensor resize is this ``F.interpolate``)."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.side = int(size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def size(self) -> tuple[int, int]:
        return self.side, self.side

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = int(images.shape[-2]), int(images.shape[-1])
        scale = self.side / float(max(height, width))
        x, new = images, (height, width)
        if scale != 1.0:
            new = (round(height * scale), round(width * scale))
            x = F.interpolate(x, size=new, mode="bicubic", align_corners=False, antialias=True)
        pad_h, pad_w = self.side - new[0], self.side - new[1]
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"steps": f"HPSv2 preprocess_val: F.interpolate(bicubic, antialias=True) of the longest side to "
                         f"{self.side}, zero padding to a centred square, (x - mean) / std",
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


def torch_preprocess(encoder: Any) -> torch.nn.Module:
    """The differentiable preprocessing of *encoder*: its :attr:`~clipgauge.encoders.Encoder.crop_plan` as
    :class:`ResizeCropNormalize`, HPSv2's transform as :class:`ResizeLongestPadNormalize`; :class:`UsageError`
    naming the model when its preprocessing has no torch form here (a non-standard OpenCLIP transform such as
    ``resize_mode="squash"``, a remote-code model's own processor)."""
    from ..encoders.hpsv2 import HPSv2Transform

    transform = getattr(encoder, "transform", None)
    if isinstance(transform, HPSv2Transform):
        return ResizeLongestPadNormalize(transform.size, transform.mean, transform.std)
    plan = encoder.crop_plan
    if plan is None:
        image = getattr(encoder, "image_encoder", None)  # families that borrow another model's image tower
        plan = getattr(image, "crop_plan", None)
    if plan is not None:
        return ResizeCropNormalize(plan)
    raise UsageError(f"model '{encoder.spec}' has no differentiable preprocessing in clipgauge.rewards: its image "
                     f"preprocessing is not the standard resize, centre crop and normalise "
                     f"({encoder.preprocessing().get('implementation') or encoder.preprocessing().get('transform')})")

"""The batch normalisation by arithmetic (encoders/normalize.py) is bit-identical to the families' own
preprocessing: transformers' ``CLIPImageProcessorPil`` and torchvision's ``ToTensor`` → ``Normalize`` (OpenCLIP),
for standard and unusual settings; where no arithmetic agrees, the table look-up is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipgauge.encoders.clip_pil import ClipPilPlan
from clipgauge.encoders.crop_plan import CropPlan
from clipgauge.encoders.normalize import MODES, Normalizer

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _images(n: int = 6) -> list[Image.Image]:
    """Random RGB pictures of several shapes; the first is 16 × 16 holding every level in every channel."""
    rng = np.random.default_rng(7)
    every = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16)] * 3, axis=-1)
    every[..., 1] = every[..., 1][::-1]  # channels differ at each pixel
    out = [Image.fromarray(every)]
    for i in range(1, n):
        out.append(Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 57 - 3 * i, 3), dtype=np.uint8)))
    return out


def _crops(plan: CropPlan, images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([plan.crop(im) for im in images]))


@pytest.mark.parametrize("rescale", [1 / 255, 0.00392156862745098, 1 / 127.5, 0.003, 0.7])
@pytest.mark.parametrize("mean_std", [(CLIP_MEAN, CLIP_STD), ((0.5,) * 3, (0.5,) * 3), ((0.0,) * 3, (1.0,) * 3)])
def test_equals_clip_image_processor_pil(rescale, mean_std):
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16},
                                      rescale_factor=rescale, image_mean=list(mean_std[0]), image_std=list(mean_std[1]))
    plan = ClipPilPlan.from_processor(processor)
    assert plan is not None
    images = _images()
    expected = processor(images=images, return_tensors="pt")["pixel_values"]
    crops = _crops(plan, images)
    assert torch.equal(crops[0].flatten().sort().values, torch.arange(256).repeat_interleave(3).to(torch.uint8))
    got = plan.normalize(crops)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got, expected)
    # and equal to the table look-up it replaces
    assert torch.equal(got, plan.normalize(crops, torch.from_numpy(plan.table().reshape(-1))))


@pytest.mark.parametrize("mean_std", [(CLIP_MEAN, CLIP_STD), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                      ((0.5,) * 3, (0.5,) * 3), ((0.0,) * 3, (1.0,) * 3)])
def test_equals_torchvision_to_tensor_normalize(mean_std):
    from torchvision import transforms

    plan = CropPlan(16, 16, 16, 3, 1 / 255, mean_std[0], mean_std[1], arithmetic="torchvision")
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean_std[0], mean_std[1])])
    images = _images()
    crops = _crops(plan, images)
    expected = torch.stack([reference(Image.fromarray(c.numpy())) for c in crops])
    assert Normalizer(plan).mode == "div"
    assert torch.equal(plan.normalize(crops), expected)


def test_standard_plans_use_arithmetic_and_odd_ones_fall_back_to_the_table():
    standard = ClipPilPlan(224, 224, 224, 3, 1 / 255, CLIP_MEAN, CLIP_STD)
    assert Normalizer(standard).mode == "div"
    odd = ClipPilPlan(224, 224, 224, 3, 0.003, CLIP_MEAN, CLIP_STD)  # no float32 division or product matches
    fallback = Normalizer(odd)
    assert fallback.mode == "lookup" and fallback.mode in MODES
    crops = _crops(odd, _images())
    assert torch.equal(fallback(crops), odd.normalize(crops, torch.from_numpy(odd.table().reshape(-1))))


def test_batch_size_and_position_never_change_a_value():
    plan = ClipPilPlan(16, 16, 16, 3, 1 / 255, CLIP_MEAN, CLIP_STD)
    crops = _crops(plan, _images(9))
    whole = plan.normalize(crops)
    for i in range(len(crops)):
        assert torch.equal(plan.normalize(crops[i : i + 1])[0], whole[i])
    assert torch.equal(plan.normalize(crops.flip(0)), whole.flip(0))

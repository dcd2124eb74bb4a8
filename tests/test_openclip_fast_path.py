"""OpenCLIP's standard evaluation transform runs as a crop plan (uint8 crops in the workers, normalisation per
batch on the device) whose pixels are bit-identical to the transform's; other transforms keep the per-image path;
the start-up prefetch works for OpenCLIP specs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import PROMPTS, jpeg_bytes, random_rgb
from PIL import Image
from tiny_clip import TINY_OPENCLIP_ARCH

from clipgauge import Scorer
from clipgauge.decode import load_image
from clipgauge.encoders import early_crop_plan
from clipgauge.encoders.crop_plan import CropPlan
from clipgauge.encoders.openclip_plan import (
    early_open_clip_plan,
    plan_from_preprocess_cfg,
    plan_from_transform,
)

open_clip = pytest.importorskip("open_clip")

#: (width, height): tiny, huge, portrait, landscape, square at the size, and long sides whose centre-crop offset
#: (long - 224) / 2 ends in .5 — where torchvision rounds half to even and transformers floors.
SIZES = [(1, 1), (2, 9), (3000, 2200), (224, 224), (224, 227), (227, 224), (229, 224), (97, 301), (640, 480),
         (480, 640), (223, 2000), (225, 231)]


def _image(seed: int, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    if mode == "L":
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    if mode == "P":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(64)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _fast(plan: CropPlan, image: Image.Image, table: torch.Tensor | None = None) -> torch.Tensor:
    return plan.normalize(torch.from_numpy(plan.crop(image))[None], table)[0]


@pytest.fixture(scope="module")
def tiny(openclip_checkpoint):
    """The tiny OpenCLIP model as open_clip's users load it, and clipgauge's encoder of it."""
    model, _, transform = open_clip.create_model_and_transforms(TINY_OPENCLIP_ARCH,
                                                                pretrained=str(openclip_checkpoint))
    scorer = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu", batch_size=4)
    return model.eval(), transform, scorer


# ------------------------------------------------------------------------------------------ bit identity
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_crop_plan_is_bit_identical_to_the_open_clip_transform(tiny, mode):
    _, transform, scorer = tiny
    plan = scorer.encoder.crop_plan
    assert plan == plan_from_transform(transform) and plan.arithmetic == "torchvision"
    table = torch.from_numpy(plan.table().reshape(-1))
    for i, size in enumerate(SIZES):
        image = load_image(_image(i, size, mode))  # what the pipeline hands to preprocessing: 8-bit RGB
        expected = transform(image)
        got = _fast(plan, image, table)
        assert got.dtype == expected.dtype == torch.float32
        assert torch.equal(got, expected), (mode, size)
        assert torch.equal(scorer.encoder.preprocess(image), expected)


@pytest.mark.parametrize("kwargs", [
    dict(image_size=224),
    dict(image_size=224, interpolation="bilinear", mean=(0.0,) * 3, std=(1.0,) * 3),  # MobileCLIP's
    dict(image_size=256, mean=(0.5,) * 3, std=(0.5,) * 3),
    dict(image_size=(240, 240), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    dict(image_size=336),
])
def test_standard_chain_variants_are_bit_identical(kwargs):
    transform = open_clip.image_transform(is_train=False, **kwargs)
    plan = plan_from_transform(transform)
    assert plan is not None
    cfg = dict(size=kwargs["image_size"], mean=kwargs.get("mean"), std=kwargs.get("std"),
               interpolation=kwargs.get("interpolation"))
    assert plan_from_preprocess_cfg(cfg) == plan  # the early guess reads the same plan from the settings
    for i, size in enumerate(SIZES):
        image = load_image(_image(100 + i, size))
        assert torch.equal(_fast(plan, image), transform(image)), (kwargs, size)


def test_the_torchvision_arithmetic_matters():
    """The transformers convention (floor for the crop offset) would differ: the test above can fail."""
    transform = open_clip.image_transform(224, is_train=False)
    plan = plan_from_transform(transform)
    as_transformers = CropPlan(plan.short, plan.crop_h, plan.crop_w, plan.resample, plan.scale, plan.mean, plan.std)
    image = load_image(_image(0, (224, 227)))  # offset 1.5: torchvision rounds to 2, transformers floors to 1
    assert torch.equal(_fast(plan, image), transform(image))
    assert not torch.equal(_fast(as_transformers, image), transform(image))
    assert plan != as_transformers


@pytest.mark.parametrize("kwargs", [
    dict(image_size=224, resize_mode="squash"),
    dict(image_size=224, resize_mode="longest"),
    dict(image_size=(224, 256)),  # non-square: ResizeKeepRatio
])
def test_other_transforms_keep_the_per_image_path(kwargs):
    transform = open_clip.image_transform(is_train=False, **kwargs)
    assert plan_from_transform(transform) is None
    cfg = dict(size=kwargs["image_size"], resize_mode=kwargs.get("resize_mode"))
    assert plan_from_preprocess_cfg(cfg) is None


def test_modified_chains_are_not_taken_for_the_standard_one():
    from torchvision import transforms as T

    base = open_clip.image_transform(224, is_train=False)
    steps = list(base.transforms)
    variants = [
        T.Compose(steps[:-1]),  # no Normalize
        T.Compose(steps + [T.Lambda(lambda x: x)]),  # an extra step
        T.Compose([T.Resize(224, interpolation=T.InterpolationMode.NEAREST)] + steps[1:]),
        T.Compose([T.Resize(224, max_size=300)] + steps[1:]),
        T.Compose([T.Resize((224, 224))] + steps[1:]),  # squash
        T.Compose([steps[0], T.CenterCrop(256)] + steps[2:]),  # crop larger than the resize: padding
        T.Compose([steps[0], steps[1], T.Lambda(lambda im: im.convert("L"))] + steps[3:]),
        T.Compose([steps[0], steps[1], steps[2], T.PILToTensor()] + steps[4:]),
        steps,  # not a Compose
    ]
    for variant in variants:
        assert plan_from_transform(variant) is None, variant


# ------------------------------------------------------------------------------------------- scoring
def test_fast_path_scores_equal_the_per_image_transform_path(tiny, openclip_checkpoint):
    model, transform, fast = tiny
    slow = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu", batch_size=4)
    slow.encoder._plan = None  # what a non-standard transform gets: the transform per image, float pixels
    assert slow.encoder.crop_plan is None and fast.encoder.crop_plan is not None
    images = [load_image(_image(i, size)) for i, size in enumerate(SIZES)]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(len(images))]
    got, per_image = fast.score(images, prompts), slow.score(images, prompts)
    np.testing.assert_array_equal(got, per_image)  # same batches, same pixels: bit-equal

    tokenizer = open_clip.get_tokenizer(TINY_OPENCLIP_ARCH)
    with torch.no_grad():  # open_clip alone, in the scorer's batches of 4
        fi = torch.cat([model.encode_image(torch.stack([transform(im) for im in images[i:i + 4]]), normalize=True)
                        for i in range(0, len(images), 4)])
        ft = model.encode_text(tokenizer(prompts), normalize=True)
    np.testing.assert_allclose(got, (fi * ft).sum(-1).numpy(), atol=1e-6, rtol=0)


def test_prefetch_is_used_for_open_clip_specs(tmp_path, openclip_checkpoint):
    spec = f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}"
    reference = Scorer(spec, device="cpu", batch_size=4)  # fresh: its prompt embedded alone, as below
    paths = []
    for i in range(6):
        p = tmp_path / f"img_{i}.jpg"
        p.write_bytes(jpeg_bytes(random_rgb(i, size=(120 + 17 * i, 90 + 23 * i))))
        paths.append(p)
    expected = reference.score_pairs(paths, "a photo of a cat").cosine
    assert early_crop_plan(spec) == reference.encoder.crop_plan  # known before the model loads
    scorer = Scorer(spec, device="cpu", batch_size=4, prefetch=paths)
    assert scorer._prefetch is not None and len(scorer._prefetch.jobs) == len(paths)
    for _, fut in scorer._prefetch.jobs:
        fut.result()
    for i, p in enumerate(paths):  # other pictures now: only the prefetched pixels give the expected scores
        p.write_bytes(jpeg_bytes(random_rgb(100 + i, size=(64, 64))))  # (a path is checked before it is read)
    result = scorer.score_pairs(paths, "a photo of a cat")
    assert result.error == [None] * len(paths)
    np.testing.assert_array_equal(result.cosine, expected)


def test_early_plan_for_builtin_architectures_does_not_import_open_clip():
    """From the installed open_clip's model_configs/*.json, read as files: equal to the loaded transform's plan."""
    code = ("import sys\nfrom clipgauge.encoders import early_crop_plan\n"
            "for spec in ('open_clip:ViT-B-32:laion2b_s34b_b79k', 'open_clip:ViT-L-14-336:openai', "
            "'open_clip:RN50:/some/checkpoint.pt', 'open_clip:ViT-B-16-SigLIP:webli', 'open_clip:Nope:x'):\n"
            "    p = early_crop_plan(spec)\n"
            "    print(None if p is None else (p.short, p.crop_h, p.crop_w, p.resample, p.arithmetic))\n"
            "print('open_clip' in sys.modules, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:3] == ["(224, 224, 224, 3, 'torchvision')", "(336, 336, 336, 3, 'torchvision')",
                         "(224, 224, 224, 3, 'torchvision')"]
    assert lines[4] == "None"  # unknown architecture
    assert lines[5] == "False False"
    # the same guesses with open_clip imported (its registry and pretrained configs) equal the real transforms
    from open_clip.transform import PreprocessCfg, image_transform_v2

    for arch, tag in (("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-L-14-336", "openai"), ("RN50", "openai")):
        cfg = dict(open_clip.get_pretrained_cfg(arch, tag))
        cfg["size"] = open_clip.get_model_config(arch)["vision_cfg"]["image_size"]
        pp = PreprocessCfg(**{k: v for k, v in cfg.items() if k in
                                        ("size", "mean", "std", "interpolation", "resize_mode")})
        assert early_open_clip_plan(arch, tag) == plan_from_transform(image_transform_v2(pp, False))
    assert early_open_clip_plan("ViT-B-16-SigLIP", "webli") is None  # squash: no fast path, no prefetch

"""The opt-in device decode path (``decode="gpu"``, ``--decode gpu``): which images take the exact path and why,
its arithmetic against the recipe written out, its measured bound, its provenance and its one-line errors.

Everything but nvJPEG runs on CPU (torchvision decodes there with libjpeg-turbo, the same code path);
the nvJPEG test is skipped without CUDA.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from conftest import jpeg_bytes, random_rgb
from PIL import Image

from clipgauge import Scorer
from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.scoring.gpu_decode import fallback_reason

BIG = 10**9
#: |Δcos| bound of the device path against the exact path, on the trained demo CLIP (measured: ~1e-5 on CPU)
CPU_BOUND = 1e-3
#: the same with nvJPEG, whose IDCT and chroma upsampling are not libjpeg's
CUDA_BOUND = 1e-2


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _exif_rotated(img: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(img, exif=exif.tobytes())


@pytest.fixture(scope="module")
def inputs() -> dict[str, bytes]:
    img = random_rgb(1, (160, 120))  # not square: a missed EXIF rotation changes the crop
    return {"baseline": jpeg_bytes(img), "png": _png(img), "cmyk": jpeg_bytes(img.convert("CMYK")),
            "exif": _exif_rotated(img), "progressive": jpeg_bytes(img, progressive=True),
            "gray": jpeg_bytes(img.convert("L"))}


EXPECTED_REASONS = {"png": "not a JPEG", "cmyk": "CMYK or YCCK JPEG", "exif": "EXIF orientation 6",
                    "progressive": "progressive JPEG", "gray": "grayscale JPEG"}


def test_fallback_reasons_from_the_headers(inputs):
    assert fallback_reason(inputs["baseline"], BIG) is None
    assert fallback_reason(_exif_rotated(random_rgb(2), orientation=1), BIG) is None  # upright: the device decodes
    for name, reason in EXPECTED_REASONS.items():
        assert fallback_reason(inputs[name], BIG) == reason, name
    assert fallback_reason(inputs["baseline"], 100) == "too large"


def test_fallbacks_take_the_exact_path_with_their_reasons_counted(hf_model_dir, inputs):
    names = list(inputs)
    truncated = inputs["baseline"][: len(inputs["baseline"]) // 2]  # headers fine: the device decoder rejects it
    images = [inputs[n] for n in names] + [truncated, b"not an image"]
    exact = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=3)
    gpu = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=3, decode="gpu")
    a, errors_a = exact.try_embed_images(images)
    b, errors_b = gpu.try_embed_images(images)
    assert errors_b == errors_a  # every row back, with the exact path's reasons
    assert errors_a[:len(names)] == [None] * len(names) and all(errors_a[len(names):])
    for i, name in enumerate(names):
        if name in EXPECTED_REASONS:  # the exact path's pixels (EXIF rotation, CMYK, gray, PNG), same model
            np.testing.assert_allclose(b[i], a[i], atol=1e-6, err_msg=name)
    decode = gpu.provenance()["decode"]
    assert decode["path"] == "gpu" and "libjpeg-turbo" in decode["decoder"]
    assert decode["images_decoded_on_device"] == 1  # the baseline JPEG; the truncated one failed both paths
    # counted: images the exact path scored instead (the two unreadable ones are errors, not fallbacks)
    assert decode["fallbacks_to_exact_path"] == {r: 1 for r in EXPECTED_REASONS.values()}
    assert gpu.provenance()["preprocessing"]["decode_path"] == "gpu"
    assert "decode_path" not in exact.provenance()["preprocessing"] and exact.provenance()["decode"]["path"] == "cpu"


def _recipe_crop(data: bytes, short: int, crop: int) -> torch.Tensor:
    """The device path written out: libjpeg decode (Pillow's libjpeg-turbo, as torchvision's CPU decoder),
    torch's antialiased bicubic in float to the processor's size (shortest side, long side by int()), rounded,
    then the centre crop at (size - crop) // 2."""
    x = torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    r = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    r = r.round().clamp(0, 255)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    return r[0, :, top : top + crop, left : left + crop].permute(1, 2, 0)


def test_device_crops_follow_the_recipe(hf_model_dir):
    gpu = Scorer(f"hf:{hf_model_dir}", device="cpu", decode="gpu")
    plan, dec = gpu.encoder.crop_plan, gpu.tensor_decoder
    assert (plan.short, plan.crop_h, plan.crop_w) == (224, 224, 224)
    sizes = [(300, 200), (200, 300), (257, 255), (224, 224), (100, 80), (300, 200)]
    datas = [jpeg_bytes(random_rgb(10 + i, size)) for i, size in enumerate(sizes)]
    items = [dec.prepare(d) for d in datas]
    dec.decode_batch(items, torch.device("cpu"))
    for size, data, item in zip(sizes, datas, items):
        got = item.pixels
        assert got.dtype == torch.uint8 and tuple(got.shape) == (224, 224, 3), size
        ref = _recipe_crop(data, 224, 224)
        # torch's uint8 kernel works in fixed point and rounds between its two passes: a few levels at most
        diff = (got.float() - ref).abs()
        assert diff.max() <= 4 and diff.mean() <= 0.5, size
    exact_crop = plan.crop(Image.open(io.BytesIO(datas[0])).convert("RGB"))
    assert np.abs(exact_crop.astype(int) - items[0].pixels.numpy().astype(int)).max() <= 3


def _demo_jpegs(n: int) -> tuple[list[bytes], list[str]]:
    from clipgauge.demo.run import DEMO_PROMPTS
    from clipgauge.demo.scenes import DEMO_MODEL_CHANGES, render_examples

    examples = render_examples(list(DEMO_PROMPTS), per_prompt=2, seed=3, size=512, change=DEMO_MODEL_CHANGES)[:n]
    return [jpeg_bytes(e.image) for e in examples], [e.prompt for e in examples]


def test_deviation_on_the_demo_clip_is_within_the_stated_bound():
    images, prompts = _demo_jpegs(16)
    exact = Scorer("demo", device="cpu", batch_size=8).score_pairs(images, prompts)
    gpu = Scorer("demo", device="cpu", batch_size=8, decode="gpu")
    fast = gpu.score_pairs(images, prompts)
    assert gpu.provenance()["decode"]["images_decoded_on_device"] == len(images)
    d = np.abs(exact.cosine - fast.cosine)
    assert d.max() <= CPU_BOUND
    assert np.ptp(exact.cosine) > 100 * CPU_BOUND  # the scores themselves spread far wider than the bound


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="nvJPEG decoding needs a CUDA GPU (torchvision.io.decode_jpeg(device='cuda'))")
def test_nvjpeg_on_cuda_is_within_its_bound():
    images, prompts = _demo_jpegs(16)
    exact = Scorer("demo", device="cuda", batch_size=8).score_pairs(images, prompts)
    gpu = Scorer("demo", device="cuda", batch_size=8, decode="gpu")
    fast = gpu.score_pairs(images, prompts)
    decode = gpu.provenance()["decode"]
    assert "nvJPEG" in decode["decoder"] and decode["images_decoded_on_device"] == len(images)
    assert np.abs(exact.cosine - fast.cosine).max() <= CUDA_BOUND


def test_usage_errors(hf_model_dir):
    with pytest.raises(UsageError, match="choose one"):
        Scorer(f"hf:{hf_model_dir}", device="cpu", decode="gpu", fast_decode=True)
    with pytest.raises(UsageError, match="unknown decode path"):
        Scorer(f"hf:{hf_model_dir}", device="cpu", decode="nvjpeg")


def test_cli_decode_gpu_records_path_and_fallbacks(capsys, hf_model_dir, image_set):
    folder, rows = image_set  # odd rows JPEG, even rows PNG
    out = folder / "results.jsonl"
    code = main(["score", str(folder / "manifest.jsonl"), "--model", f"hf:{hf_model_dir}", "--out", str(out),
                 "--device", "cpu", "--decode", "gpu", "--batch-size", "3"])
    assert code == 0
    summary = json.loads((folder / "results.jsonl.summary.json").read_text())
    decode = summary["provenance"]["decode"]
    assert decode["images_decoded_on_device"] == 4 and decode["fallbacks_to_exact_path"] == {"not a JPEG": 4}
    assert summary["provenance"]["preprocessing"]["decode_path"] == "gpu"
    code = main(["score", str(folder / "manifest.jsonl"), "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                 "--decode", "gpu", "--fast-decode"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and "Traceback" not in err and len(errors) == 1 and "--fast-decode and --decode gpu" in errors[0]

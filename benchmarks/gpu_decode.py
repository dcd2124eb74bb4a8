"""The device decode path (``--decode gpu``) against the exact path: its deviation and its speed, in one run.

Writes 512-px JPEG photos-like images (multi-scale 1/f noise with hard-edged shapes, 512×512, 512×384 and
384×512; and the demo scenes rendered at 512 px), then:

* **deviation** — for each model (the trained demo CLIP on its scenes; a ViT-B/32-shaped CLIP with random
  weights on the photos-like set), the cosine of every image with its prompt through ``Scorer(decode="cpu")``
  (exact) and ``Scorer(decode="gpu")``: max and mean |Δcos|, and the max / mean |Δ| of the uint8 crops;
* **speed** — images/s of decode + resize + crop alone: the exact path (Pillow, N worker threads) and the
  device path (bytes and header checks in N threads, then ``decode_batch`` on the device), each timed over
  every image after a warm-up; with ``--device cuda`` also the model-only image forward rate (pre-made
  batches on the device, fp32/fp16/bf16) and the embedding rate of both decode paths through the Scorer.

Usage::

    python benchmarks/gpu_decode.py --images 256 --workers 2                 # CPU: the tensor path on CPU
    python benchmarks/gpu_decode.py --images 2048 --device cuda --workers 16  # GPU: nvJPEG
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def photo_like(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Multi-scale (1/f-like) colour noise plus a few hard-edged shapes: textures and edges, as in photos."""
    acc = np.zeros((h, w, 3), dtype=np.float64)
    for octave in range(1, 8):
        cells = 2 ** octave
        small = rng.normal(0, 1, (cells, cells, 3))
        up = np.asarray(Image.fromarray(((small - small.min()) / (np.ptp(small) + 1e-9) * 255).astype(np.uint8))
                        .resize((w, h), Image.BICUBIC), dtype=np.float64) - 128
        acc += up / octave
    acc = 128 + 100 * acc / (np.abs(acc).max() + 1e-9)
    img = Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img


def make_images(folder: Path, n: int) -> tuple[list[Path], list[str], list[Path], list[str]]:
    """(photos-like paths, their prompts, demo-scene paths, their prompts), 512-px JPEGs, quality 90."""
    from throughput import read_prompts

    from clipgauge.demo.run import DEMO_PROMPTS
    from clipgauge.demo.scenes import DEMO_MODEL_CHANGES, render_examples

    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(512, 512), (512, 384), (384, 512)]
    texts = read_prompts(n)
    texts = (texts * (n // max(1, len(texts)) + 1))[:n]
    photos = [folder / f"photo_{i:05d}.jpg" for i in range(n)]

    def write(i: int) -> None:
        if not photos[i].exists():
            photo_like(np.random.default_rng(i), *sizes[i % 3]).save(photos[i], quality=90)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    n_demo = min(n, 256)  # rendering at 512 px is slow, and 256 scenes are plenty for the demo CLIP's deviation
    per_prompt = max(1, n_demo // (4 * len(DEMO_PROMPTS)))
    demo, demo_texts = [], []
    examples = render_examples(list(DEMO_PROMPTS), per_prompt=per_prompt * 4, seed=1, size=512,
                               change=DEMO_MODEL_CHANGES)
    for i, ex in enumerate(examples[:n_demo]):
        path = folder / f"demo_{i:05d}.jpg"
        if not path.exists():
            ex.image.save(path, quality=90)
        demo.append(path)
        demo_texts.append(ex.prompt)
    return photos, texts, demo, demo_texts


def deviation(model: str, paths: list[Path], prompts: list[str], device: str, batch: int) -> dict:
    """max/mean |Δcos| of decode="gpu" against decode="cpu", and of the uint8 crops."""
    import torch

    from clipgauge import Scorer

    exact = Scorer(model, device=device, batch_size=batch)
    fast = Scorer(model, device=device, batch_size=batch, decode="gpu")
    a = exact.score_pairs([str(p) for p in paths], prompts)
    b = fast.score_pairs([str(p) for p in paths], prompts)
    d = np.abs(a.cosine - b.cosine)
    plan, dec = exact.encoder.crop_plan, fast.tensor_decoder
    items = [dec.prepare(str(p)) for p in paths[:64]]
    dec.decode_batch(items, torch.device(device))
    px = [np.abs(plan.crop(Image.open(p).convert("RGB")).astype(np.int16) - it.pixels.cpu().numpy().astype(np.int16))
          for p, it in zip(paths, items)]
    return {"model": model, "pairs": len(paths), "max_abs_dcos": float(d.max()), "mean_abs_dcos": float(d.mean()),
            "crop_max_abs_level": int(max(x.max() for x in px)), "crop_mean_abs_level": float(np.mean(px)),
            "fallbacks": fast.provenance()["decode"]["fallbacks_to_exact_path"]}


def decode_speed(paths: list[Path], device: str, workers: int, batch: int) -> dict:
    """images/s of decode + resize + crop: the exact path vs the device path (timed whole, after a warm-up)."""
    import torch

    from clipgauge.decode import load_image
    from clipgauge.encoders.clip_pil import ClipPilPlan
    from clipgauge.scoring.gpu_decode import TensorDecoder

    plan = ClipPilPlan(short=224, crop_h=224, crop_w=224, resample=3, scale=1 / 255,
                       mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
    dev = torch.device(device)
    dec = TensorDecoder(plan, 1 << 30)
    names = [str(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: plan.crop(load_image(p)), names[:workers * 2]))  # warm-up
        t = time.perf_counter()
        list(pool.map(lambda p: plan.crop(load_image(p)), names))
        exact = len(names) / (time.perf_counter() - t)
        dec.decode_batch([dec.prepare(p) for p in names[:batch]], dev)  # warm-up (CUDA context, nvJPEG handles)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        t = time.perf_counter()
        for start in range(0, len(names), batch):
            dec.decode_batch(list(pool.map(dec.prepare, names[start : start + batch])), dev)
        sync()
        device_rate = len(names) / (time.perf_counter() - t)
    return {"exact_images_per_s": exact, "device_images_per_s": device_rate, "workers": workers,
            "device": device, "batch": batch}


def forward_rate(model_dir: Path, device: str, batch: int, precisions: list[str], seconds: float = 5.0) -> dict:
    """Model-only image forward images/s (pre-made float batches on the device), per precision."""
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval().to(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    out = {}
    for precision in precisions:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            for _ in range(3):
                model.get_image_features(pixel_values=x)
            _sync(device)
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < seconds:
                model.get_image_features(pixel_values=x)
                n += batch
            _sync(device)
            out[precision] = n / (time.perf_counter() - t)
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def end_to_end(model: str, paths: list[Path], device: str, batch: int, workers: int, precisions: list[str],
               decode: str) -> dict:
    """Steady-state images/s of ``Scorer.try_embed_images`` from the JPEG files (model loaded and warm, files in the
    page cache): decode, preprocess, forward and normalise, per precision, with one decode path."""
    from clipgauge import Scorer

    scorer = Scorer(model, device=device, batch_size=batch, num_workers=workers, decode=decode)
    names = [str(p) for p in paths]
    out = {}
    for precision in precisions:
        scorer.to(device, precision)
        scorer.try_embed_images(names[: 2 * batch])  # warm-up
        _sync(device)
        t = time.perf_counter()
        _, errors = scorer.try_embed_images(names)
        _sync(device)
        out[precision] = len(names) / (time.perf_counter() - t)
        assert not any(errors), next(e for e in errors if e)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--arch", nargs="*", default=["vit-b-32"], help="random-weight architectures (throughput.py)")
    ap.add_argument("--precision", nargs="+", default=["fp32", "fp16", "bf16"], help="forward rate (CUDA only)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clipgauge-bench")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    import torch
    from throughput import build_model

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")

    photos, texts, demo, demo_texts = make_images(a.workdir / "gpu_decode_images", a.images)
    print(f"# {len(photos)} photos-like + {len(demo)} demo 512-px JPEGs, device {a.device}, {os.cpu_count()} CPUs, "
          f"{a.workers} workers, {time.strftime('%Y-%m-%d')}")
    report: dict = {"deviation": [], "speed": None, "forward": {}}
    runs = [("demo", demo, demo_texts)]
    for arch in a.arch:
        runs.append((f"hf:{build_model(arch, a.workdir / f'model-{arch}')}", photos, texts))
    for model, paths, prompts in runs:
        r = deviation(model, paths, prompts, a.device, a.batch_size)
        report["deviation"].append(r)
        name = model if model == "demo" else Path(model[3:]).name
        print(f"{name:>16}: |dcos| max {r['max_abs_dcos']:.2e} mean {r['mean_abs_dcos']:.2e} over {r['pairs']} "
              f"pairs; crops |dlevel| max {r['crop_max_abs_level']} mean {r['crop_mean_abs_level']:.3f}; "
              f"fallbacks {r['fallbacks'] or 'none'}")
    s = decode_speed(photos, a.device, a.workers, a.batch_size)
    report["speed"] = s
    print(f"decode+resize+crop: exact path {s['exact_images_per_s']:.0f} images/s ({a.workers} threads), "
          f"device path on {a.device} {s['device_images_per_s']:.0f} images/s "
          f"({s['device_images_per_s'] / s['exact_images_per_s']:.2f}x)")
    if a.device.startswith("cuda"):
        report["end_to_end"] = {}
        for arch in a.arch:
            rates = forward_rate(a.workdir / f"model-{arch}", a.device, a.batch_size, a.precision)
            report["forward"][arch] = rates
            print(f"{arch} model-only image forward (batch {a.batch_size}, warm): "
                  + ", ".join(f"{p} {v:.0f} images/s" for p, v in rates.items()))
            for decode in ("cpu", "gpu"):
                e2e = end_to_end(f"hf:{a.workdir / f'model-{arch}'}", photos, a.device, a.batch_size, a.workers,
                                 a.precision, decode)
                report["end_to_end"][f"{arch} decode={decode}"] = e2e
                print(f"{arch} end to end from 512-px JPEGs, --decode {decode}, {a.workers} workers: " + ", ".join(
                    f"{p} {v:.0f} images/s ({100 * v / rates[p]:.0f}% of forward)" for p, v in e2e.items()))
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

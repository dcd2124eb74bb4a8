"""Shared fixtures: small *real* CLIP models (random weights, real CLIP tokenizer) in temp folders."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# Helpers that are not part of the package (tiny CLIP builders, the demo trainer's sampling and evaluation)
# live in tools/; tests import them as top-level modules.
TOOLS = Path(__file__).resolve().parents[1] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from tiny_clip import save_tiny_hf_clip, save_tiny_openclip  # noqa: E402


@pytest.fixture(scope="session")
def hf_model_dir(tmp_path_factory) -> Path:
    """A transformers CLIPModel folder (random weights, real tokenizer, PIL image processor)."""
    return save_tiny_hf_clip(tmp_path_factory.mktemp("hf_clip"), seed=0)


@pytest.fixture(scope="session")
def openclip_checkpoint(tmp_path_factory) -> Path:
    """A registered tiny open_clip architecture and a safetensors checkpoint of it."""
    return save_tiny_openclip(tmp_path_factory.mktemp("open_clip"), seed=0)


@pytest.fixture(scope="session")
def hf_scorer(hf_model_dir):
    from clipgauge import Scorer

    return Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=4)


def random_rgb(seed: int, size=(96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def jpeg_files(folder: Path, n: int, size=(300, 200)) -> list[Path]:
    """*n* JPEG files ``folder/0.jpg`` … of ``random_rgb(i, size)``, their paths in order."""
    paths = [folder / f"{i}.jpg" for i in range(n)]
    for i, p in enumerate(paths):
        p.write_bytes(jpeg_bytes(random_rgb(i, size=size)))
    return paths


def one_line_score_error(capsys, folder: Path, metric: str) -> str:
    """``clipgauge score folder/manifest.jsonl --metric METRIC`` on CPU, which must fail with exit code 2 and one
    line on stderr (no traceback, no option echoed); that line."""
    from clipgauge.cli import main

    code = main(["score", str(folder / "manifest.jsonl"), "--metric", metric, "--device", "cpu",
                 "--out", str(folder / "bad.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "--" not in err, err
    return err


PROMPTS = [
    "a photo of a cat",
    "a red circle to the left of a blue star",
    "",
    "an astronaut riding a horse on the moon, highly detailed, " * 8,  # > 77 tokens
    "two yellow stars",
    "A PHOTO OF A CAT",
]


@pytest.fixture()
def image_set(tmp_path) -> tuple[Path, list[dict]]:
    """A folder with JPEG/PNG images and a JSONL manifest of 8 rows (some prompts shared, one long)."""
    rows = []
    for i in range(8):
        img = random_rgb(i, size=(64 + 16 * i, 200 - 10 * i))
        name = f"img_{i}.{'jpg' if i % 2 else 'png'}"
        if i % 2:
            (tmp_path / name).write_bytes(jpeg_bytes(img))
        else:
            img.save(tmp_path / name)
        rows.append({"id": f"r{i}", "image": name, "prompt": PROMPTS[i % len(PROMPTS)], "seed": i, "cfg": 3.5 + i})
    with open(tmp_path / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return tmp_path, rows


def reference_hf_cosines(model_dir, images, prompts) -> np.ndarray:
    """Cosines computed by transformers alone (CLIPModel + CLIPTokenizer + CLIPImageProcessorPil)."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(model_dir).eval()
    tok = CLIPTokenizer.from_pretrained(model_dir)
    proc = CLIPImageProcessorPil.from_pretrained(model_dir)
    with torch.no_grad():
        px = proc(images=[Image.open(p).convert("RGB") if isinstance(p, (str, Path)) else p for p in images],
                  return_tensors="pt")["pixel_values"]
        fi = model.get_image_features(pixel_values=px).pooler_output
        enc = tok(list(prompts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        ft = model.get_text_features(**enc).pooler_output
    fi = torch.nn.functional.normalize(fi, dim=-1)
    ft = torch.nn.functional.normalize(ft, dim=-1)
    return (fi * ft).sum(-1).numpy()


def score_rows_with_demo(folder: Path, rows: list[dict]) -> Path:
    """Write *rows* as ``folder/manifest.jsonl``, score it with ``clipgauge score --model demo`` and return
    the results file."""
    from clipgauge.cli import main

    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    results = folder / "results.jsonl"
    assert main(["score", str(folder / "manifest.jsonl"), "--model", "demo", "--device", "cpu",
                 "--out", str(results)]) == 0
    return results


def assert_rows_close(actual: list[dict], expected: list[dict], atol: float = 1e-6, *,
                      atol_for: dict[str, float] | None = None) -> None:
    """Result rows equal up to float rounding: the same rows, the same columns in the same order, equal
    non-float values, floats (also inside lists, e.g. embeddings) within *atol*, None where None, NaN where NaN.

    For results that went through different batch splits (resumed vs clean, file vs folder, Ray vs local,
    other worker counts): the float sums of a forward pass depend on the batch's shape, so such scores are
    only promised within 1e-6 (README). A column may have its own tolerance in *atol_for* (float16 embeddings).
    """
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert list(a) == list(e), f"row {i}: columns {list(a)}, expected {list(e)}"
        for key in e:
            tol = (atol_for or {}).get(key, atol)
            _assert_value_close(a[key], e[key], tol, f"row {i}, column {key!r}")


def _is_float(x) -> bool:
    return isinstance(x, (float, np.floating))


def _assert_value_close(a, e, atol: float, where: str) -> None:
    if a is None or e is None:
        assert a is None and e is None, f"{where}: {a!r}, expected {e!r}"
    elif _is_float(a) or _is_float(e):
        assert _is_float(a) and _is_float(e), f"{where}: {a!r}, expected {e!r} (both floats)"
        if np.isnan(a) or np.isnan(e):
            assert np.isnan(a) and np.isnan(e), f"{where}: {a!r}, expected {e!r}"
        else:
            assert abs(float(a) - float(e)) <= atol, f"{where}: {a!r}, expected {e!r} (|Δ| > {atol})"
    elif isinstance(e, (list, tuple, np.ndarray)):
        assert isinstance(a, (list, tuple, np.ndarray)) and len(a) == len(e), f"{where}: {a!r}, expected {e!r}"
        for j, (x, y) in enumerate(zip(a, e)):
            _assert_value_close(x, y, atol, f"{where}[{j}]")
    elif isinstance(e, dict):
        assert isinstance(a, dict) and list(a) == list(e), f"{where}: {a!r}, expected {e!r}"
        for k in e:
            _assert_value_close(a[k], e[k], atol, f"{where}[{k!r}]")
    else:
        assert isinstance(a, bool) == isinstance(e, bool) and a == e, f"{where}: {a!r}, expected {e!r}"


def sigkill_when(proc, ready, timeout: float = 180.0) -> None:
    """Kill *proc* (a ``subprocess.Popen`` with ``stderr=PIPE``) with a real SIGKILL as soon as ``ready()`` is
    true; fails if the process ends first or *timeout* seconds pass."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read().decode()[-500:]}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def score_on_ray(metric_cls, manifest: Path, out: Path, shard_size: int) -> int:
    """``clipgauge score MANIFEST --metric clip --metric NAME --engine ray`` (one worker, demo model) with
    *metric_cls*, a metric defined outside the package, registered for the run only: the exit code."""
    pytest.importorskip("ray")
    from clipgauge.cli import main
    from clipgauge.metrics import register_metric, unregister_metric

    register_metric(metric_cls)
    try:
        return main(["score", str(manifest), "--model", "demo", "--device", "cpu", "--metric", "clip",
                     "--metric", metric_cls.name, "--shard-size", str(shard_size), "--engine", "ray",
                     "--ray-workers", "1", "--out", str(out)])
    finally:
        unregister_metric(metric_cls.name)

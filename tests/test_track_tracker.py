"""CLIPTracker with a real small CLIP: same numbers as `clipgauge score`, every input form, writers, memory."""

from __future__ import annotations

import csv
import gc
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.track import CLIPTracker, CSVWriter, JSONLWriter


@pytest.fixture(scope="session")
def fast_model_dir(hf_model_dir, tmp_path_factory) -> Path:
    """The tiny test CLIP (real tokenizer) with 32-pixel images, so that many evaluations stay fast."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    folder = tmp_path_factory.mktemp("fast_clip")
    for f in hf_model_dir.iterdir():
        if f.name not in ("model.safetensors", "config.json", "preprocessor_config.json"):
            shutil.copy(f, folder / f.name)
    cfg = CLIPConfig.from_pretrained(hf_model_dir)
    cfg.vision_config.image_size, cfg.vision_config.patch_size = 32, 8
    torch.manual_seed(1)
    CLIPModel(cfg).eval().save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fast_scorer(fast_model_dir):
    from clipgauge import Scorer

    return Scorer(f"hf:{fast_model_dir}", device="cpu", batch_size=8)


PROMPTS = ["a red circle", "two yellow stars", "a blue square to the left of a green star"]


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    return [random_rgb(seed + i, size=(40 + 4 * i, 36)) for i in range(n)]


def test_same_scores_as_clipgauge_score(fast_model_dir, tmp_path, capsys):
    images = _images(6)
    prompts = [PROMPTS[i % 3] for i in range(6)]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (img, p) in enumerate(zip(images, prompts)):
        img.save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(p, encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(folder), "--model", f"hf:{fast_model_dir}", "--device", "cpu", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    expected = {r["image"]: r["cosine"] for r in rows}

    tracker = CLIPTracker(f"hf:{fast_model_dir}", prompts=PROMPTS, device="cpu")
    paths = [folder / f"{i}.png" for i in range(6)]
    for form in (paths, images, [torch.from_numpy(np.array(im)) for im in images]):
        result = tracker.log(0, form, prompts=prompts)
        assert result["clip/n"] == 6
        assert result["clip/mean"] == pytest.approx(summary["scales"]["cosine"]["mean"], abs=1e-6)
        assert result["clip/std"] == pytest.approx(summary["scales"]["cosine"]["std"], abs=1e-6)
        assert result["clip/min"] == pytest.approx(summary["scales"]["cosine"]["min"], abs=1e-6)
        assert result["clip/max"] == pytest.approx(summary["scales"]["cosine"]["max"], abs=1e-6)
        for name, ps in result.per_prompt.items():
            mine = [expected[f"{i}.png"] for i in range(6) if prompts[i] == ps.prompt]
            np.testing.assert_allclose(ps.scores, mine, atol=1e-6)
            assert result[f"clip/prompt/{name}"] == pytest.approx(np.mean(mine), abs=1e-6)


def test_input_forms_keep_every_image(fast_scorer):
    tracker = CLIPTracker(fast_scorer, prompts=PROMPTS)
    batch = torch.rand(6, 3, 32, 32)
    as_uint8 = [np.rint(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for x in batch]
    # default prompts: 2 consecutive images per library prompt (diffusers' num_images_per_prompt order)
    r1 = tracker.log(1, batch)
    r2 = tracker.log(2, as_uint8, prompts=[p for p in PROMPTS for _ in range(2)])
    r3 = tracker.log(3, {p: [as_uint8[2 * i], as_uint8[2 * i + 1]] for i, p in enumerate(PROMPTS)})
    r4 = tracker.log(4, [[as_uint8[2 * i], as_uint8[2 * i + 1]] for i in range(3)], prompts=PROMPTS)
    for r in (r1, r2, r3, r4):
        assert r["clip/n"] == 6
        assert [len(ps.scores) for ps in r.per_prompt.values()] == [2, 2, 2]
        assert r["clip/mean"] == pytest.approx(r1["clip/mean"], abs=1e-6)
        assert r["clip/min"] <= r["clip/mean"] <= r["clip/max"]
    # library names work as prompts; a single prompt string applies to every image
    lib_name = tracker.names[1]
    r5 = tracker.log(5, as_uint8[:2], prompts=lib_name)
    assert list(r5.per_prompt) == [lib_name] and r5["clip/n"] == 2
    # prompts outside the library get their own names
    r6 = tracker.log(6, as_uint8[:1], prompts=["a purple triangle"])
    assert "clip/prompt/a-purple-triangle" in r6.metrics


def test_scales_and_extremes(fast_scorer):
    cos = CLIPTracker(fast_scorer, prompts=PROMPTS, n_extremes=2)
    tm = CLIPTracker(fast_scorer, prompts=PROMPTS, scale="torchmetrics")
    images = _images(6, seed=10)
    a, b = cos.log(0, images), tm.log(0, images)
    assert b["clip/mean"] == pytest.approx(100 * a["clip/mean"], rel=1e-9)
    assert b["clip/max"] == pytest.approx(100 * a["clip/max"], rel=1e-9)
    assert [e.score for e in a.best] == sorted((e.score for e in a.best), reverse=True)
    assert a.best[0].score == pytest.approx(a["clip/max"]) and a.worst[0].score == pytest.approx(a["clip/min"])
    assert all(isinstance(e.image, Image.Image) and max(e.image.size) <= 128 for e in a.best + a.worst)


def test_unscorable_images_are_counted_not_raised(fast_scorer, tmp_path, caplog):
    tracker = CLIPTracker(fast_scorer, prompts=PROMPTS)
    images = _images(3)
    with caplog.at_level(logging.WARNING, logger="clipgauge.track"):
        r = tracker.log(7, [images[0], tmp_path / "missing.png", images[2]])
    assert r["clip/n"] == 2 and r["clip/errors"] == 1
    assert "file not found" in r.errors[0]
    assert "could not be scored" in caplog.text
    with pytest.raises(UsageError, match="do not match"):
        tracker.log(8, images[:2])  # 2 images for 3 prompts


def test_csv_and_jsonl_writers(fast_scorer, tmp_path):
    csv_path, jsonl_path = tmp_path / "clip.csv", tmp_path / "clip.jsonl"
    with CLIPTracker(fast_scorer, prompts=PROMPTS, writers=[f"csv:{csv_path}", str(jsonl_path)]) as tracker:
        results = [tracker.log(step, _images(3, seed=step)) for step in (0, 50, 100)]
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in results:
        got = {row["metric"]: float(row["value"]) for row in rows if int(row["step"]) == r.step}
        assert got == pytest.approx(r.metrics)
        prompt_rows = [row for row in rows if int(row["step"]) == r.step and row["metric"].startswith("clip/prompt/")]
        assert sorted(row["prompt"] for row in prompt_rows) == sorted(PROMPTS)
    records = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert [rec["step"] for rec in records] == [0, 50, 100]
    for rec, r in zip(records, results):
        assert rec["metrics"] == pytest.approx(r.metrics)
        assert sum(len(p["scores"]) for p in rec["per_prompt"].values()) == 3
    # appending: a second tracker adds to the same files, the CSV header is not repeated
    with CLIPTracker(fast_scorer, prompts=PROMPTS, writers=[CSVWriter(csv_path), JSONLWriter(jsonl_path)]) as t2:
        t2.log(150, _images(3))
        for w in t2.writers:
            w.close()
    assert csv_path.read_text().count("step,wall_time") == 1
    assert len(jsonl_path.read_text().splitlines()) == 4


def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_does_not_grow_over_100_evaluations(fast_model_dir, tmp_path):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tracker = CLIPTracker(f"hf:{fast_model_dir}", prompts=PROMPTS, device=device, offload=device == "cuda",
                          writers=[f"jsonl:{tmp_path / 'm.jsonl'}"])
    batch = torch.rand(3, 3, 32, 32)
    for step in range(10):  # warm-up: thread pools, allocator caches, first-call paths
        tracker.log(step, batch)
    gc.collect()
    rss0 = _rss_bytes()
    cuda0 = torch.cuda.memory_allocated() if device == "cuda" else 0
    for step in range(10, 110):
        r = tracker.log(step, batch)
        assert r["clip/n"] == 3
    gc.collect()
    growth = _rss_bytes() - rss0
    assert growth < 20 * 2**20, f"host memory grew by {growth / 2**20:.1f} MiB over 100 evaluations"
    if device == "cuda":
        assert torch.cuda.memory_allocated() <= cuda0
    tracker.close()


def test_offload_keeps_the_model_off_the_device_between_evaluations(fast_model_dir):
    tracker = CLIPTracker(f"hf:{fast_model_dir}", prompts=PROMPTS, device="cpu", offload=True)
    r = tracker.log(0, torch.rand(3, 3, 32, 32))
    assert r["clip/n"] == 3
    assert next(tracker.scorer.encoder.module.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_offload_frees_gpu_memory_between_evaluations(fast_model_dir):
    base = torch.cuda.memory_allocated()
    tracker = CLIPTracker(f"hf:{fast_model_dir}", prompts=PROMPTS, device="cuda", offload=True)
    on_gpu = CLIPTracker(f"hf:{fast_model_dir}", prompts=PROMPTS, device="cuda")
    batch = torch.rand(3, 3, 32, 32)
    a, b = tracker.log(0, batch), on_gpu.log(0, batch)
    assert a["clip/mean"] == pytest.approx(b["clip/mean"], abs=1e-5)
    assert next(tracker.scorer.encoder.module.parameters()).device.type == "cpu"
    assert next(on_gpu.scorer.encoder.module.parameters()).device.type == "cuda"
    del on_gpu
    gc.collect()
    assert torch.cuda.memory_allocated() <= base + 2**20


def test_bad_arguments_are_usage_errors(fast_scorer):
    with pytest.raises(UsageError, match="unknown scale"):
        CLIPTracker(fast_scorer, prompts=PROMPTS, scale="percent")
    with pytest.raises(UsageError, match="distributed"):
        CLIPTracker(fast_scorer, prompts=PROMPTS, distributed="all")
    with pytest.raises(UsageError, match="unknown writer"):
        CLIPTracker(fast_scorer, prompts=PROMPTS, writers=["nowhere:x"]).log(0, _images(3))

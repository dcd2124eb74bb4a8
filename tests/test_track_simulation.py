"""A simulated fine-tuning run: validation images follow their prompts better at every evaluation.

The tracker writes TensorBoard event files and a W&B offline run; both are read back with their own
formats (TensorBoard's ``EventAccumulator``; the W&B run's ``.wandb`` record log) and must hold the same
numbers, with ``clip/mean`` rising and ``clip/min <= clip/mean <= clip/max`` at every step. Then the
images are made to collapse and an alert must fire and ask to stop.

With the shipped demo CLIP (``Scorer("demo")``) the images are demo-scene renders: four per prompt, of
which 0, 1, 2, 3 and then all 4 follow the prompt as training progresses (the others are deliberately
mismatched renders). Without it, a small random CLIP is used and "better" means the model's own ranking of
candidate images.
"""

from __future__ import annotations

import glob
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import random_rgb
from PIL import Image

from clipgauge.demo import scenes
from clipgauge.integrations.loops import TrackEvery
from clipgauge.track import CLIPTracker, DropFromBest

DEMO_PROMPTS = ["a red circle", "two yellow stars", "a blue square", "a green triangle", "a purple star",
                "an orange circle", "a red circle to the left of a blue star", "two white squares"]
EVERY = 10
LAST_GOOD_STEP = 40  # the images are fully "trained" from this step on


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def wandb_history(run_dir: Path) -> list[dict]:
    """The history rows of a W&B run, read from its ``run-*.wandb`` file (a LevelDB-style record log)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, rows = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 2):
            buf = chunk
        elif kind in (3, 4):
            buf += chunk
        if kind not in (1, 4):
            continue
        rec = pb.Record()
        rec.ParseFromString(buf)
        if rec.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


def _demo_images(size: int = 64, per_prompt: int = 4) -> tuple[list[str], Callable, Callable]:
    """Demo-scene renders: at quality q, round(q × 4) of each prompt's 4 images follow it, the others are
    deliberately mismatched (one attribute changed); the same pictures at every step, so only following
    changes."""
    rng = np.random.default_rng(0)
    good = {p: [scenes.render_prompt(p, follow=True, rng=rng, size=size)[0] for _ in range(per_prompt)]
            for p in DEMO_PROMPTS}
    bad = {p: [scenes.render_prompt(p, follow=False, rng=rng, size=size)[0] for _ in range(per_prompt)]
           for p in DEMO_PROMPTS}

    def images(prompt: str, quality: float) -> list[Image.Image]:
        k = round(quality * per_prompt)
        return good[prompt][:k] + bad[prompt][k:]

    def collapsed(prompt: str) -> list[Image.Image]:
        return [Image.new("RGB", (size, size), (128, 128, 128))] * per_prompt

    return DEMO_PROMPTS, images, collapsed


def _ranked_images(scorer, prompts: list[str]) -> tuple[list[str], Callable, Callable]:
    """For a random CLIP: per prompt, candidate images sorted by that model's own score."""
    pool = [random_rgb(100 + i, size=(48, 48)) for i in range(16)]
    ranked = {}
    for p in prompts:
        cos = scorer.score(pool, p)
        ranked[p] = [pool[i] for i in np.argsort(cos)]

    def images(prompt: str, quality: float) -> list[Image.Image]:
        return [ranked[prompt][round(quality * (len(pool) - 1))]]

    def collapsed(prompt: str) -> list[Image.Image]:
        return [ranked[prompt][0]]

    return prompts, images, collapsed


@pytest.fixture(params=["demo", "tiny"])
def setup(request, hf_scorer):
    if request.param == "demo":
        from clipgauge import Scorer

        scorer = Scorer("demo", device="cpu")
        return scorer, *_demo_images()
    return hf_scorer, *_ranked_images(hf_scorer, DEMO_PROMPTS[:4])


def test_simulated_training_run(setup, tmp_path, monkeypatch):
    scorer, prompts, images, collapsed = setup
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    from clipgauge.track.writers import WandbWriter

    fired = []
    wb = WandbWriter(project="clipgauge-test", mode="offline", dir=str(tmp_path),
                     settings=wandb.Settings(x_disable_stats=True, disable_git=True, console="off"))
    tracker = CLIPTracker(scorer, prompts=prompts, writers=[f"tensorboard:{tmp_path / 'tb'}", wb],
                          alerts=[DropFromBest(0.01, stop=True)], on_alert=fired.append)
    state = {"quality": 0.0, "collapse": False}

    def generate(batch_prompts: list[str]) -> list[list[Image.Image]]:  # one list of images per prompt
        if state["collapse"]:
            return [collapsed(p) for p in batch_prompts]
        return [images(p, state["quality"]) for p in batch_prompts]

    per_prompt = len(generate(prompts[:1])[0])
    track = TrackEvery(tracker, generate, every_n_steps=EVERY)
    for step in range(LAST_GOOD_STEP + 1):  # the "training loop"
        state["quality"] = step / LAST_GOOD_STEP
        track(step)
        assert not track.should_stop
    assert fired == []
    state["collapse"] = True
    collapse_step = LAST_GOOD_STEP + EVERY
    track(collapse_step)
    tracker.close()
    wb.close()

    # the alert fired once, at the collapse, and asked to stop
    assert track.should_stop
    assert [(a.rule, a.step) for a in fired] == [("DropFromBest", collapse_step)]

    tb = tensorboard_scalars(tmp_path / "tb")
    steps = list(range(0, LAST_GOOD_STEP + 1, EVERY))
    mean = dict(tb["clip/mean"])
    lo, hi, n = dict(tb["clip/min"]), dict(tb["clip/max"]), dict(tb["clip/n"])
    assert sorted(mean) == steps + [collapse_step]
    rising = [mean[s] for s in steps]
    assert all(b > a for a, b in zip(rising, rising[1:])), rising
    assert mean[collapse_step] < rising[-1] - 0.01
    for s in mean:
        assert lo[s] <= mean[s] <= hi[s]
        assert n[s] == len(prompts) * per_prompt
    for name in tracker.names:
        assert len(tb[f"clip/prompt/{name}"]) == len(steps) + 1

    # the W&B offline run holds the same numbers (TensorBoard stores float32)
    history = {row["_step"]: row for row in wandb_history(tmp_path)}
    assert sorted(history) == steps + [collapse_step]
    for tag in ("clip/mean", "clip/min", "clip/max", "clip/std", "clip/n"):
        for s, v in tb[tag]:
            assert history[s][tag] == pytest.approx(v, rel=1e-6, abs=1e-6)

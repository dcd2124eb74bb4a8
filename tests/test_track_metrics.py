"""The tracker logs other metrics beside clip/* (NAME/mean …) with the numbers of `clipgauge score`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import random_rgb

from clipgauge.cli import main
from clipgauge.sinks import read_results
from clipgauge.track import CLIPTracker

PROMPTS = ["a red circle", "two yellow stars", "a blue square"]


def test_tracker_logs_other_metrics_as_score_computes_them(hf_model_dir, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    rows = []
    for i in range(6):
        random_rgb(40 + i, size=(64, 48)).save(folder / f"v{i}.png")
        rows.append({"image": f"v{i}.png", "prompt": PROMPTS[i % 3]})
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["score", str(folder / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--device", "cpu", "--metric",
                 "clip", "--metric", "clip_iqa:prompts=quality,sharpness", "--out", str(tmp_path / "r.jsonl")])
    assert code == 0, capsys.readouterr().err
    scored = read_results(tmp_path / "r.jsonl")
    tracker = CLIPTracker(f"hf:{hf_model_dir}", prompts=PROMPTS, device="cpu",
                          metrics=["clip_iqa:prompts=quality,sharpness"])
    result = tracker.log(7, [folder / r["image"] for r in rows], prompts=[r["prompt"] for r in rows])
    for column in ("clip_iqa", "clip_iqa_sharpness"):
        values = np.array([r[column] for r in scored])
        assert abs(result.metrics[f"{column}/mean"] - values.mean()) < 1e-6
        assert abs(result.metrics[f"{column}/max"] - values.max()) < 1e-6 and result.metrics[f"{column}/n"] == 6
    assert abs(result.metrics["clip/mean"] - np.mean([r["cosine"] for r in scored])) < 1e-6
    assert len(tracker.metrics._plan.embedders) == 1  # clip_iqa shares the tracker's CLIP


def test_track_command_writes_other_metrics_to_tensorboard(hf_model_dir, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tmp_path / "step5"
    folder.mkdir()
    for i in range(3):
        random_rgb(i, size=(48, 40)).save(folder / f"v{i}.png")
        (folder / f"v{i}.txt").write_text(PROMPTS[i])
    code = main(["track", str(tmp_path / "run"), "--images-dir", str(folder), "--step", "5", "--model",
                 f"hf:{hf_model_dir}", "--device", "cpu", "--metric", "clip_iqa", "--no-images"])
    assert code == 0, capsys.readouterr().err
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "clip/mean" in tags and "clip_iqa/mean" in tags
    assert acc.Scalars("clip_iqa/mean")[0].step == 5 and 0.0 <= acc.Scalars("clip_iqa/mean")[0].value <= 1.0

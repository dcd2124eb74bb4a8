"""``clipgauge track``: add scores of images dumped to disk to an existing TensorBoard run, after the fact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from conftest import random_rgb  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from clipgauge.cli import main  # noqa: E402

PROMPTS = ["a red circle", "two yellow stars", "a blue square"]


def _dump(folder: Path, n: int = 6, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        random_rgb(seed + i, size=(48, 40)).save(folder / f"val_{i}.png")
        (folder / f"val_{i}.txt").write_text(PROMPTS[i % 3], encoding="utf-8")
    return folder


def test_adds_scores_to_an_existing_run(hf_model_dir, tmp_path, capsys):
    logdir = tmp_path / "run"
    sw = SummaryWriter(str(logdir))  # the trainer's own run, with its loss
    for step in range(0, 300, 50):
        sw.add_scalar("train/loss", 1.0 / (step + 1), step)
    sw.close()
    model = ["--model", f"hf:{hf_model_dir}", "--device", "cpu"]
    docs = {}
    for step in (100, 200):
        images = _dump(tmp_path / f"step{step}", seed=step)
        code = main(["track", str(logdir), "--images-dir", str(images), "--step", str(step), *model,
                     "--csv", str(tmp_path / "clip.csv"), "--json"])
        assert code == 0
        docs[step] = json.loads(capsys.readouterr().out)
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "clip/mean" in tags
    assert {e.step: e.value for e in acc.Scalars("clip/mean")} == pytest.approx(
        {s: d["metrics"]["clip/mean"] for s, d in docs.items()}, abs=1e-6)
    assert docs[100]["metrics"]["clip/n"] == 6 and docs[100]["not_scored"] == []
    assert "clip/best_worst" in acc.Tags()["images"]
    # same numbers as `clipgauge score` on the same folder
    out = tmp_path / "s.jsonl"
    assert main(["score", str(tmp_path / "step100"), *model, "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert docs[100]["metrics"]["clip/mean"] == pytest.approx(summary["scales"]["cosine"]["mean"], abs=1e-6)
    assert len((tmp_path / "clip.csv").read_text().splitlines()) == 1 + 2 * (5 + 3)  # header, 2 × (5 stats + 3 prompts)


def test_table_partial_failures_and_usage_errors(hf_model_dir, tmp_path, capsys):
    images = _dump(tmp_path / "imgs")
    (images / "val_1.txt").unlink()  # one image without its prompt
    model = ["--model", f"hf:{hf_model_dir}", "--device", "cpu"]
    code = main(["track", str(tmp_path / "run"), "--images-dir", str(images), "--step", "3", *model])
    captured = capsys.readouterr()
    assert code == 1
    assert "step 3, 5/6 images scored" in captured.out and "lowest-scoring prompts" in captured.out
    assert "1 of 6 images could not be scored" in captured.err and "sidecar val_1.txt is missing" in captured.err
    assert main(["track", str(tmp_path / "run"), "--images-dir", str(tmp_path / "nope"), "--step", "3"]) == 2
    assert "clipgauge: error:" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "run"), "--images-dir", str(images)]) == 2  # --step is required
    assert main(["track", "--help"]) == 0
    assert "--images-dir" in capsys.readouterr().out

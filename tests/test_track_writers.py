"""TensorBoard writer: scalars, the best/worst image grid and table, into a log dir or the loop's SummaryWriter."""

from __future__ import annotations

import io
import sys

import pytest
import torch
from PIL import Image

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from clipgauge.errors import UsageError  # noqa: E402
from clipgauge.track import CLIPTracker  # noqa: E402
from clipgauge.track.writers import TensorBoardWriter, make_writer  # noqa: E402

PROMPTS = ["a red circle", "two yellow stars", "a blue | square"]


def _acc(logdir) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scores_next_to_the_loss_in_the_loops_summary_writer(hf_scorer, tmp_path):
    sw = SummaryWriter(str(tmp_path / "run"))
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, writers=[sw], n_extremes=2)
    for step in range(0, 30, 10):
        sw.add_scalar("train/loss", 1.0 / (step + 1), step)
        result = tracker.log(step, torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(step)))
    tracker.close()
    sw.add_scalar("train/loss", 0.01, 30)  # the user's writer is still open
    sw.close()
    acc = _acc(tmp_path / "run")
    scalars = acc.Tags()["scalars"]
    assert {"train/loss", "clip/mean", "clip/min", "clip/max", "clip/std", "clip/n"} <= set(scalars)
    assert len([t for t in scalars if t.startswith("clip/prompt/")]) == 3
    assert [e.step for e in acc.Scalars("clip/mean")] == [0, 10, 20]
    assert acc.Scalars("clip/mean")[-1].value == pytest.approx(result["clip/mean"], abs=1e-6)
    (grid,) = acc.Images("clip/best_worst")[-1:]
    picture = Image.open(io.BytesIO(grid.encoded_image_string))
    assert picture.size == (grid.width, grid.height) and grid.height > 2 * 128  # two rows of 128-px tiles
    text = acc.Tensors("clip/best_worst/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "| best 1 |" in text and "| worst 1 |" in text and "a blue \\| square" in text


def test_options_and_specs(hf_scorer, tmp_path):
    writer = TensorBoardWriter(tmp_path / "lean", images=False, per_prompt=False)
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, writers=[writer, f"tb:{tmp_path / 'spec'}"])
    tracker.log(5, torch.rand(3, 3, 32, 32))
    tracker.close()
    writer.close()
    lean = _acc(tmp_path / "lean")
    assert sorted(lean.Tags()["scalars"]) == ["clip/max", "clip/mean", "clip/min", "clip/n", "clip/std"]
    assert lean.Tags()["images"] == []
    assert "clip/best_worst" in _acc(tmp_path / "spec").Tags()["images"]
    with pytest.raises(UsageError, match="unknown writer"):
        make_writer("tensorboard")  # no directory
    with pytest.raises(UsageError, match="cannot write"):
        make_writer(42)


def test_importing_the_tracker_imports_no_optional_dependency():
    import subprocess

    code = ("import sys, clipgauge, clipgauge.track, clipgauge.integrations, clipgauge.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorboard', 'wandb', 'lightning', 'pytorch_lightning', 'torchmetrics')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

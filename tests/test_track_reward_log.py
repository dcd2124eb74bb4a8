"""``CLIPTracker.log_reward``: the training reward's statistics and its gap to the last evaluation, in every writer.

Statistics are checked against numpy on the finite values (``std`` is the sample standard deviation, ddof=1, as for
``clip/std``); TensorBoard output is read back with TensorBoard's own ``EventAccumulator``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from clipgauge.errors import UsageError
from clipgauge.scoring.scorer import Embedder
from clipgauge.track import CLIPTracker

PROMPTS = ["a red circle", "two yellow stars", "a blue square"]
KEY = "train_reward/clip"


def _images(seed: int) -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _numpy_stats(values, key: str = KEY) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    return {f"{key}/mean": float(np.mean(finite)), f"{key}/min": float(np.min(finite)),
            f"{key}/max": float(np.max(finite)), f"{key}/std": float(np.std(finite, ddof=1)),
            f"{key}/n": float(finite.size), f"{key}/nonfinite": float(x.size - finite.size)}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class FakeReward:
    """What the tracker needs of a ``clipgauge.rewards.Reward``: ``metric`` and ``eval_key(prefix, scale)``."""

    def __init__(self, metric: str, key: str | None) -> None:
        self.metric, self.key, self.asked = metric, key, []

    def eval_key(self, prefix: str, scale: str) -> str | None:
        self.asked.append((prefix, scale))
        return self.key


def test_stats_gap_and_writers_read_back(hf_scorer, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writers = [f"jsonl:{tmp_path / 'r.jsonl'}", f"tb:{tmp_path / 'tb'}", f"csv:{tmp_path / 'r.csv'}"]
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, n_extremes=0, writers=writers)
    rewards = [0.31, 0.27, float("nan"), 0.35, float("inf"), 0.22, -float("inf"), 0.30]
    before = tracker.log_reward(1, rewards, name="clip", compare_to="clip/mean")
    assert before == _numpy_stats(rewards)  # exact: same float64 arithmetic as numpy
    assert before[f"{KEY}/nonfinite"] == 3 and before[f"{KEY}/n"] == 5
    assert f"{KEY}/gap" not in before and f"{KEY}/eval_step" not in before  # no evaluation yet

    evaluation = tracker.log(2, _images(0))
    batch = np.array([0.4, 0.1, np.nan, 0.25], dtype=np.float32)
    after = tracker.log_reward(3, batch, name="clip", compare_to="clip/mean")
    mean = float(np.mean(batch[~np.isnan(batch)].astype(np.float64)))
    assert after[f"{KEY}/mean"] == mean
    assert after[f"{KEY}/gap"] == mean - evaluation["clip/mean"]  # exactly train mean − last eval clip/mean
    assert after[f"{KEY}/eval_step"] == 2
    tracker.close()

    # JSONL: the evaluation's object, then one {"step", "wall_time", "metrics"} per log_reward (NaN → null)
    lines = _jsonl(tmp_path / "r.jsonl")
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert set(lines[0]) == {"step", "wall_time", "metrics"} and lines[0]["metrics"] == before
    assert lines[2]["metrics"] == after and "per_prompt" in lines[1]
    # TensorBoard, read back with its own loader: every scalar at its step (float32 in the event file)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert {f"{KEY}/{s}" for s in ("mean", "std", "min", "max", "n", "nonfinite", "gap", "eval_step")} \
        <= set(acc.Tags()["scalars"])
    for stat in ("mean", "std", "min", "max", "n"):
        assert [e.step for e in acc.Scalars(f"{KEY}/{stat}")] == [1, 3]
        assert [e.value for e in acc.Scalars(f"{KEY}/{stat}")] == pytest.approx(
            [before[f"{KEY}/{stat}"], after[f"{KEY}/{stat}"]], rel=1e-6)
    (gap,) = acc.Scalars(f"{KEY}/gap")
    assert gap.step == 3 and gap.value == pytest.approx(after[f"{KEY}/gap"], rel=1e-6, abs=1e-7)
    # CSV: one row per scalar
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"].startswith(KEY)]
    assert {(int(r["step"]), r["metric"]): float(r["value"]) for r in rows} == {
        **{(1, k): v for k, v in before.items()}, **{(3, k): v for k, v in after.items()}}


def test_tensor_inputs_any_dtype_and_grad(hf_scorer):
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS)
    weights = torch.tensor([0.5, 0.2, 0.9, 0.4], requires_grad=True)
    rewards = weights * 2  # part of the autograd graph, as a reward-training loss would use it
    out = tracker.log_reward(0, rewards)  # name defaults to "reward"
    assert out == _numpy_stats(rewards.detach().numpy(), "train_reward/reward")
    rewards.sum().backward()  # the graph is untouched
    assert weights.grad.tolist() == [2.0, 2.0, 2.0, 2.0]
    bf16 = torch.tensor([[1.5, float("nan")], [0.25, 3.0]], dtype=torch.bfloat16)  # any shape: flattened
    assert tracker.log_reward(1, bf16, name="x")["train_reward/x/nonfinite"] == 1
    assert tracker.log_reward(2, [torch.tensor(1.0, requires_grad=True), 2.0])["train_reward/reward/mean"] == 1.5
    empty = tracker.log_reward(3, [], name="x")
    assert empty["train_reward/x/n"] == 0 and math.isnan(empty["train_reward/x/mean"])
    with pytest.raises(UsageError, match="rewards must be numbers"):
        tracker.log_reward(4, ["high"])
    with pytest.raises(UsageError, match="reward name"):
        tracker.log_reward(4, [1.0], name="")


def test_reward_object_names_and_finds_the_eval_key(hf_scorer, tmp_path, caplog):
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, scale="torchmetrics", prefix="val", n_extremes=0)
    evaluation = tracker.log(10, _images(1))
    clip = FakeReward("clip", "val/mean")
    out = tracker.log_reward(11, [30.0, 20.0], reward=clip)
    assert clip.asked == [("val", "torchmetrics")]  # the tracker's prefix and base scale
    assert out["train_reward/clip/gap"] == 25.0 - evaluation["val/mean"]
    assert out["train_reward/clip/eval_step"] == 10
    explicit = tracker.log_reward(11, [1.0], reward=clip, name="raw", compare_to="val/min")  # overrides eval_key
    assert explicit["train_reward/raw/gap"] == 1.0 - evaluation["val/min"]
    with caplog.at_level(logging.WARNING, logger="clipgauge.track"):
        other_scale = FakeReward("clip", None)  # the reward's scale is not the tracker's: no gap, said once
        for step in (12, 13):
            assert "train_reward/clip/gap" not in tracker.log_reward(step, [0.3], reward=other_scale)
            assert "train_reward/aesthetic/gap" not in tracker.log_reward(
                step, [5.0], reward=FakeReward("aesthetic", "aesthetic/mean"))  # not a metric of this tracker
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 2, notes
    assert "scale differs" in notes[0] and "'aesthetic/mean'" in notes[1] and "val/mean" in notes[1]


def test_writers_get_plain_scalars(hf_scorer, tmp_path):
    pytest.importorskip("wandb")
    from clipgauge.track.result import TrackResult
    from clipgauge.track.writers import WandbWriter

    class Run:  # a W&B run: only log() is used
        def __init__(self) -> None:
            self.logged: list[tuple[dict, int]] = []

        def log(self, data: dict, step: int) -> None:
            self.logged.append((data, step))

    class OnlyWrite:  # a user writer without write_scalars
        def __init__(self) -> None:
            self.results: list[TrackResult] = []

        def write(self, result: TrackResult) -> None:
            self.results.append(result)

    run, mine = Run(), OnlyWrite()
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, writers=[WandbWriter(run=run), mine])
    out = tracker.log_reward(7, [1.0, 3.0], name="pick")
    assert run.logged == [(out, 7)]
    (result,) = mine.results
    assert result.step == 7 and result.metrics == out and not result.per_prompt


class _NoModel(Embedder):
    """A model that is never used: ``log_reward`` scores nothing, and the spawned ranks need not load a CLIP."""

    def __init__(self) -> None:  # no model to load
        self.device, self.precision = torch.device("cpu"), "fp32"


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=world)
    try:
        out = {}
        for mode in ("gather", "rank0"):
            tracker = CLIPTracker(_NoModel(), prompts=PROMPTS, distributed=mode,
                                  writers=[f"jsonl:{folder}/{mode}.jsonl"])
            out[mode] = tracker.log_reward(4, torch.tensor([1.0, 2.0]) + 10 * rank, name="r")
            tracker.close()
        with open(f"{folder}/rank{rank}.json", "w") as fh:
            json.dump(out, fh)
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks(tmp_path):
    """gather: collective, every rank's rewards; rank0: rank-local, only rank 0's written (two spawned gloo ranks)."""
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    out = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert out[0]["gather"] == out[1]["gather"] == _numpy_stats([1.0, 2.0, 11.0, 12.0], "train_reward/r")
    assert out[0]["rank0"] == _numpy_stats([1.0, 2.0], "train_reward/r")
    assert out[1]["rank0"] == _numpy_stats([11.0, 12.0], "train_reward/r")
    for mode in ("gather", "rank0"):
        (line,) = _jsonl(tmp_path / f"{mode}.jsonl")  # written once, by rank 0
        assert line["metrics"] == out[0][mode]

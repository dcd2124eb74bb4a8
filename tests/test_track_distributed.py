"""The tracker under torch.distributed: real gloo process groups on CPU (world size 1 in-process, and 2 ranks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from clipgauge.track import CLIPTracker
from clipgauge.track import distributed as dist

PROMPTS = ["a red circle", "two yellow stars", "a blue square", "an orange triangle"]


def _batch(seed: int, n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 40, 40, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["gather", "rank0"])
def test_world_of_one_matches_no_process_group(hf_scorer, tmp_path, mode):
    plain = CLIPTracker(hf_scorer, prompts=PROMPTS).log(3, _batch(0))
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert dist.dist_active() and dist.rank() == 0 and dist.world_size() == 1
        tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, distributed=mode, writers=[f"jsonl:{tmp_path / 'r.jsonl'}"])
        assert tracker.local_prompts() == PROMPTS
        r = tracker.log(3, _batch(0))
        tracker.close()
    finally:
        torch_dist.destroy_process_group()
    assert r.metrics == pytest.approx(plain.metrics)
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def _worker(rank: int, world: int, model_dir: str, folder: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=world)
    try:
        from clipgauge import Scorer

        scorer = Scorer(f"hf:{model_dir}", device="cpu")
        for mode in ("gather", "rank0"):
            tracker = CLIPTracker(scorer, prompts=PROMPTS, distributed=mode, alerts=["floor:2.0!"],
                                  writers=[f"jsonl:{folder}/{mode}.jsonl"])
            mine = tracker.local_prompts()
            images = _batch(rank, len(mine))  # this rank's images for its share of the prompts
            r = tracker.log(5, images, prompts=mine)
            tracker.close()
            with open(f"{folder}/{mode}-rank{rank}.json", "w") as fh:
                json.dump({"metrics": r.metrics, "prompts": mine, "stop": tracker.should_stop}, fh)
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks_gather_and_rank0(hf_model_dir, hf_scorer, tmp_path):
    """Two spawned ranks (≈ 5 s on 2 idle cores: each imports torch and transformers), both modes."""
    folder = str(tmp_path)
    mp.spawn(_worker, args=(2, str(hf_model_dir), folder), nprocs=2, join=True)
    for mode in ("gather", "rank0"):
        out = [json.loads(Path(f"{folder}/{mode}-rank{k}.json").read_text()) for k in (0, 1)]
        # every rank gets the same result … (exact: the same gathered scores, or rank 0's broadcast result)
        assert out[0]["metrics"] == out[1]["metrics"]
        assert out[0]["stop"] and out[1]["stop"]  # … and the same stop signal
        assert len(Path(f"{folder}/{mode}.jsonl").read_text().splitlines()) == 1  # written once
        if mode == "gather":
            assert out[0]["prompts"] == PROMPTS[0::2] and out[1]["prompts"] == PROMPTS[1::2]
            # the gathered numbers are those of all ranks' images scored in one process
            expected = CLIPTracker(hf_scorer, prompts=PROMPTS).log(
                5, list(_batch(0, 2)) + list(_batch(1, 2)), prompts=PROMPTS[0::2] + PROMPTS[1::2])
        else:
            assert out[0]["prompts"] == PROMPTS and out[1]["prompts"] == []
            expected = CLIPTracker(hf_scorer, prompts=PROMPTS).log(5, _batch(0, 4), prompts=PROMPTS)
        assert out[0]["metrics"]["clip/n"] == 4
        assert out[0]["metrics"] == pytest.approx(expected.metrics, abs=1e-6)

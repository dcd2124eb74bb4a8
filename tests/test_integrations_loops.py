"""TrackEvery / evaluate for hand-written loops: when it evaluates, no autograd, fixed seeds, RNG untouched."""

from __future__ import annotations

import pytest
import torch

from clipgauge.errors import UsageError
from clipgauge.integrations.loops import TrackEvery, evaluate
from clipgauge.track import CLIPTracker

PROMPTS = ["a red circle", "two yellow stars"]


def _noise_generator(calls: list):
    def generate(prompts: list[str]) -> torch.Tensor:
        calls.append((list(prompts), torch.is_grad_enabled()))
        return torch.rand(len(prompts) * 2, 3, 32, 32)  # two images per prompt, drawn from torch's RNG

    return generate


def test_track_every_in_a_loop(hf_scorer):
    calls: list = []
    track = TrackEvery(CLIPTracker(hf_scorer, prompts=PROMPTS), _noise_generator(calls), every_n_steps=5)
    results = {}
    torch.manual_seed(123)
    for step in range(12):
        r = track(step)
        if r is not None:
            results[step] = r
        assert track(step) is None  # at most once per step
        torch.rand(10)  # "training" draws random numbers too
    assert sorted(results) == [0, 5, 10]
    assert calls == [(PROMPTS, False)] * 3
    # seed 0 at every evaluation: identical validation noise, identical scores (exact: the same images in the
    # same batches through the same scorer, the prompts' embeddings cached once)
    assert results[0].metrics == results[5].metrics == results[10].metrics
    assert results[10]["clip/n"] == 4 and track.last is results[10] and not track.should_stop
    # the loop's random stream is exactly what it would have been without the tracker
    torch.manual_seed(123)
    expected = [torch.rand(10) for _ in range(12)][-1]
    torch.manual_seed(123)
    for step in range(12):
        track(step + 100)  # steps that are not due do nothing; 100, 105, 110 are due and generate
        last = torch.rand(10)
    assert torch.equal(last, expected)


def test_track_every_options(hf_scorer):
    calls: list = []
    track = TrackEvery(CLIPTracker(hf_scorer, prompts=PROMPTS), _noise_generator(calls), every_n_steps=3,
                       at_step_zero=False, seed=None, prompts=PROMPTS[:1])
    assert [s for s in range(8) if track.due(s)] == [3, 6]
    r = track(3)
    assert list(r.per_prompt) == ["a-red-circle"] and r["clip/n"] == 2
    with pytest.raises(UsageError, match="every_n_steps"):
        TrackEvery(track.tracker, _noise_generator(calls), every_n_steps=0)


def test_evaluate_accepts_one_list_of_images_per_prompt(hf_scorer):
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS)
    r = evaluate(tracker, 7, lambda prompts: [[torch.rand(3, 32, 32)] * 3 for _ in prompts])
    assert r.step == 7 and [len(p.scores) for p in r.per_prompt.values()] == [3, 3]


def test_track_every_makes_its_own_tracker(hf_model_dir, tmp_path):
    calls: list = []
    track = TrackEvery(f"hf:{hf_model_dir}", _noise_generator(calls), every_n_steps=2, prompts=PROMPTS,
                       device="cpu", writers=[f"jsonl:{tmp_path / 'clip.jsonl'}"], alerts=["floor:2.0@2!"])
    for step in range(10):
        track(step)
        if track.should_stop:
            break
    track.close()
    assert step == 2 and [c[0] for c in calls] == [PROMPTS, PROMPTS]
    assert len((tmp_path / "clip.jsonl").read_text().splitlines()) == 2
    with pytest.raises(TypeError, match="writers"):
        TrackEvery(track.tracker, _noise_generator(calls), writers=[])

"""examples/draft_demo.py: DRaFT fine-tuning of a tiny diffusers UNet on the demo CLIP reward raises the reward."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "draft_demo.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("draft_demo_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_draft_example_reward_rises(monkeypatch: pytest.MonkeyPatch) -> None:
    example = _load_example()
    rewards = []
    real_load = example.load_reward

    def spy(*args, **kwargs):
        reward = real_load(*args, **kwargs)
        rewards.append(reward)
        return reward

    monkeypatch.setattr(example, "load_reward", spy)
    history = example.train(steps=9, seed=0)
    assert len(history) == 9
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last > first + 0.15, history
    assert history[-1] > history[0] + 0.15, history
    # the reward is frozen: backpropagating through it left no gradient on its weights
    (reward,) = rewards
    params = list(reward.parameters())
    assert params and all(p.grad is None and not p.requires_grad for p in params)
    # deterministic for a fixed seed
    assert example.train(steps=2, seed=0) == history[:2]


def test_draft_example_main_prints_rewards(capsys: pytest.CaptureFixture[str]) -> None:
    example = _load_example()
    history = example.main(["--steps", "1", "--seed", "0"])
    out = capsys.readouterr().out
    assert len(history) == 1
    assert "step   0" in out and "first" in out and "last" in out

"""One path for every score: ``Scorer.score_pairs``, the tracker, the training-loop helpers and the torchmetrics
adapter compute through the ``clip`` metric and the scoring step of ``clipgauge score`` — and the model's settings
are declared once (:class:`~clipgauge.scoring.settings.ScorerSettings`), in immutable options."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import random_rgb

from clipgauge.metrics.clip import ClipScore
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.scoring.settings import SETTING_NAMES, ScorerSettings

PROMPTS = ["a red circle", "a blue square", "two yellow stars"]
SHIFT = 0.25  # what the patched clip metric adds to every cosine


@pytest.fixture(scope="module")
def demo():
    from clipgauge import Scorer

    return Scorer("demo", device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def pictures():
    return [random_rgb(seed, size=(72, 56)) for seed in range(len(PROMPTS))]


@pytest.fixture()
def shifted(monkeypatch):
    """The registered ``clip`` metric, changed: every cosine it computes is moved up by SHIFT. A path that computed
    its own cosine would not move."""
    compute = ClipScore.compute

    def moved(self, batch):
        out = compute(self, batch)
        for name in list(out.columns):
            if name.startswith("cosine"):
                out.columns[name] = out.columns[name] + SHIFT
        return out

    monkeypatch.setattr(ClipScore, "compute", moved)


def test_score_pairs_is_the_clip_metric_of_the_scoring_step(demo, pictures, shifted, monkeypatch):
    before = demo.score_pairs(pictures, PROMPTS)  # the fixture patched the metric already: undo, then compare
    monkeypatch.undo()
    plain = demo.score_pairs(pictures, PROMPTS)
    assert np.isfinite(plain.cosine).all() and (np.abs(plain.cosine) <= 1).all()
    np.testing.assert_allclose(before.cosine, plain.cosine + SHIFT, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(demo.score(pictures, PROMPTS), plain.cosine.astype(np.float32))


def test_the_tracker_and_the_loop_helpers_log_the_clip_metric(demo, pictures, monkeypatch):
    from clipgauge.integrations.loops import TrackEvery
    from clipgauge.track import CLIPTracker

    plain = CLIPTracker(demo, prompts=PROMPTS, n_extremes=1).log(0, pictures)
    compute = ClipScore.compute
    monkeypatch.setattr(ClipScore, "compute", lambda self, batch: _shift(compute(self, batch)))
    moved = CLIPTracker(demo, prompts=PROMPTS, n_extremes=1).log(0, pictures)
    assert moved["clip/mean"] == pytest.approx(plain["clip/mean"] + SHIFT, abs=1e-9)
    for name in ("a-red-circle", "a-blue-square"):
        assert moved[f"clip/prompt/{name}"] == pytest.approx(plain[f"clip/prompt/{name}"] + SHIFT, abs=1e-9)
    assert moved.best[0].score == pytest.approx(plain.best[0].score + SHIFT, abs=1e-9)
    track = TrackEvery(demo, generate=lambda prompts: pictures, prompts=PROMPTS, every_n_steps=1)
    assert track(0)["clip/mean"] == pytest.approx(moved["clip/mean"], abs=1e-9)
    pytest.importorskip("lightning")
    from clipgauge.integrations.lightning import CLIPTrackerCallback

    logged = []
    trainer = SimpleNamespace(global_step=7, is_global_zero=True, should_stop=False,
                              loggers=[SimpleNamespace(log_metrics=lambda m, step: logged.append(m))])
    module = torch.nn.Linear(1, 1)
    callback = CLIPTrackerCallback(CLIPTracker(demo, prompts=PROMPTS), lambda prompts: pictures, every_n_steps=7)
    callback.on_train_batch_end(trainer, module, None, None, 0)
    assert logged[0]["clip/mean"] == pytest.approx(moved["clip/mean"], abs=1e-9)


def _shift(out):
    out.columns["cosine"] = out.columns["cosine"] + SHIFT
    return out


def test_the_torchmetrics_adapter_moves_with_the_clip_metric(demo, pictures, shifted):
    pytest.importorskip("torchmetrics")
    from clipgauge.integrations.torchmetrics import CLIPScore

    metric = CLIPScore(demo)
    metric.update(pictures, PROMPTS)
    cos = demo.score_pairs(pictures, PROMPTS).cosine  # shifted too
    np.testing.assert_allclose(metric.scores().numpy(), 100 * cos.astype(np.float32), rtol=1e-6)
    plain = [float(np.dot(i, t)) for i, t in zip(demo.embed_images(pictures), demo.embed_texts(PROMPTS))]
    np.testing.assert_allclose(cos, np.asarray(plain) + SHIFT, atol=1e-6)


def test_score_pairs_equals_clipgauge_score(demo, pictures, tmp_path):
    """The same images and prompts through ``clipgauge.score`` and a fresh ``Scorer.score_pairs`` (the same batches):
    equal bit for bit, errors worded alike (a missing file)."""
    from clipgauge import Scorer, score

    paths = []
    for i, img in enumerate(pictures):
        paths.append(tmp_path / f"{i}.png")
        img.save(paths[-1])
    images = [*paths, tmp_path / "gone.png", paths[0]]
    prompts = [*PROMPTS, "a cat", PROMPTS[1]]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"image": p.name, "prompt": t}) + "\n" for p, t in zip(images, prompts)))
    score(manifest, tmp_path / "r.jsonl", ScoreOptions(model="demo", device="cpu", batch_size=2, language=False))
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    pairs = Scorer("demo", device="cpu", batch_size=2).score_pairs(images, prompts)
    assert [r["error"] for r in rows] == pairs.error
    assert pairs.error[3] is not None and "gone.png" in pairs.error[3]
    assert demo.score_pairs(paths[:1], [None]).error == ["missing prompt"]
    got = [None if np.isnan(c) else float(c) for c in pairs.cosine]
    assert got == [r["cosine"] for r in rows]


def test_scorer_settings_are_declared_once():
    defaults = ScorerSettings()
    options = ScoreOptions()
    assert isinstance(options, ScorerSettings)
    assert all(getattr(options, name) == getattr(defaults, name) for name in SETTING_NAMES)
    assert options.scorer_settings() == defaults
    with pytest.raises(TypeError):
        ScorerSettings(batch_sise=3)
    assert ScoreOptions(["clip"], "demo").model == "demo"  # the run's own fields stay positional


def test_options_are_immutable_and_resolve_into_a_copy():
    options = ScoreOptions(metrics=["clip"], model="demo", long_prompt="chunks-max")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 3  # type: ignore[misc]
    assert not hasattr(options, "_resolved")
    resolved = options.resolve()
    assert resolved is not options and options.metrics == ["clip"]
    assert [cls.name for cls, _ in resolved.metrics] == ["clip", "clip_chunks", "language"]
    assert resolved.resolved() == options.resolved() == list(resolved.metrics)  # resolving again changes nothing
    assert pickle.loads(pickle.dumps(resolved)) == resolved
    assert options.with_(batch_size=3).batch_size == 3 and options.batch_size == 32


def test_every_api_takes_the_settings(demo, monkeypatch):
    from clipgauge import Scorer
    from clipgauge.track import CLIPTracker

    tight = Scorer("demo", settings=ScorerSettings(device="cpu", max_image_pixels=1000), batch_size=3)
    assert (tight.batch_size, tight.max_image_pixels) == (3, 1000)
    tracker = CLIPTracker("demo", prompts=PROMPTS, device="cpu", batch_size=5, max_image_pixels=1234,
                          prompt_prefix="a photo of ")
    assert (tracker.scorer.batch_size, tracker.scorer.max_image_pixels) == (5, 1234)
    assert tracker.scorer.texts.prefix == "a photo of "
    with pytest.raises(TypeError):
        CLIPTracker("demo", prompts=PROMPTS, device="cpu", batch_sise=5)
    pytest.importorskip("torchmetrics")
    from clipgauge.integrations.torchmetrics import CLIPScore

    metric = CLIPScore("demo", batch_size=7, prompt_prefix="x ", sync_on_compute=False)
    assert (metric.scorer.batch_size, metric.scorer.prompt_prefix, metric.sync_on_compute) == (7, "x ", False)


def test_the_text_side_is_a_collaborator(demo):
    from clipgauge.scoring.texts import PromptEncoder

    assert isinstance(demo.texts, PromptEncoder) and not hasattr(demo, "_text_cache")
    table = demo.texts.table(["a red circle"])
    np.testing.assert_array_equal(table["a red circle"][0], demo.embed_texts(["a red circle"])[0])
    demo.clear_text_cache()
    assert demo.texts.table([]) == {}


def test_reference_paths_resolve_like_image_paths(tmp_path):
    from clipgauge.paths import resolve_path
    from clipgauge.pipeline.plan import ScoringPlan

    plan = ScoringPlan(ScoreOptions(model="demo", device="cpu"))
    for value in ("~/ref.png", "refs/a.png", str(tmp_path / "b.png")):
        assert plan.resolve_path(value) == resolve_path(value, ".") == Path(value).expanduser()


def test_an_encoder_made_by_hand_scores_through_the_step(pictures):
    """An Encoder object whose spec names no model family still scores (its plan knows it under another name)."""
    from clipgauge import Scorer

    encoder = Scorer("demo", device="cpu").encoder
    encoder.spec = "my own encoder"
    mine = Scorer(encoder, device="cpu", batch_size=2)
    np.testing.assert_array_equal(mine.score(pictures, PROMPTS), Scorer("demo", device="cpu", batch_size=2).score(
        pictures, PROMPTS))

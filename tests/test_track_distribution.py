"""The tracker logs ``clip/cmmd`` (to a reference-statistics file) and ``clip/vendi`` (of the validation images) at
each evaluation, read back with TensorBoard's own loader and checked against recipes written out here on
embeddings computed by transformers alone."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("clipgauge.distribution.reference")

import numpy as np  # noqa: E402
from conftest import random_rgb  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from clipgauge.cli import main  # noqa: E402
from clipgauge.distribution.reference import load_reference  # noqa: E402
from clipgauge.errors import UsageError  # noqa: E402
from clipgauge.track import CLIPTracker  # noqa: E402
from test_metric_diversity import reference_embeddings  # noqa: E402
from test_report_distribution import mmd_recipe, vendi_recipe  # noqa: E402

PROMPTS = ["a red circle", "two yellow stars", "a blue square"]


@pytest.fixture()
def reference(hf_model_dir, tmp_path):
    """Reference statistics of 8 images, made by ``clipgauge distance --save-reference`` with the tiny CLIP."""
    folder = tmp_path / "ref_images"
    folder.mkdir()
    for i in range(8):
        random_rgb(300 + i, size=(64, 64)).save(folder / f"ref{i}.png")
    path = tmp_path / "ref.npz"
    code = main(["distance", "--save-reference", str(path), str(folder), "--model", f"hf:{hf_model_dir}",
                 "--device", "cpu"])
    assert code == 0 and path.is_file()
    return path


def validation_images(folder, n: int = 6) -> list:
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"v{i}.png"
        random_rgb(40 + i, size=(64, 48)).save(p)
        paths.append(p)
    return paths


def scalars(logdir) -> dict[str, list]:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_tracker_logs_cmmd_and_vendi_to_tensorboard(hf_model_dir, reference, tmp_path):
    images = validation_images(tmp_path / "val")
    ref = np.asarray(load_reference(reference).embeddings, dtype=np.float64)
    x = reference_embeddings(hf_model_dir, images)
    want_cmmd, want_vendi = mmd_recipe(x, ref), vendi_recipe(x)
    logdir = tmp_path / "tb"
    with CLIPTracker(f"hf:{hf_model_dir}", prompts=PROMPTS, device="cpu", reference_stats=reference,
                     writers=[f"tensorboard:{logdir}"]) as tracker:
        result = tracker.log(3, images)  # two images per prompt
        tracker.log(6, images[:3])
    assert result.metrics["clip/cmmd"] == pytest.approx(want_cmmd, rel=1e-4, abs=1e-6)
    assert result.metrics["clip/vendi"] == pytest.approx(want_vendi, rel=1e-5)
    logged = scalars(logdir)
    assert [s.step for s in logged["clip/cmmd"]] == [3, 6]
    assert logged["clip/cmmd"][0].value == pytest.approx(want_cmmd, rel=1e-4, abs=1e-6)
    assert logged["clip/vendi"][0].value == pytest.approx(want_vendi, rel=1e-5)
    x3 = reference_embeddings(hf_model_dir, images[:3])
    assert logged["clip/cmmd"][1].value == pytest.approx(mmd_recipe(x3, ref), rel=1e-4, abs=1e-6)
    assert logged["clip/vendi"][1].value == pytest.approx(vendi_recipe(x3), rel=1e-5)


def test_tracker_without_reference_logs_no_distance(hf_model_dir, tmp_path):
    images = validation_images(tmp_path / "val", 3)
    result = CLIPTracker(f"hf:{hf_model_dir}", prompts=PROMPTS, device="cpu").log(1, images)
    assert "clip/cmmd" not in result.metrics and "clip/vendi" not in result.metrics


def test_tracker_refuses_a_reference_of_another_model(reference):
    with pytest.raises(UsageError, match="model"):
        CLIPTracker("demo", prompts=PROMPTS, device="cpu", reference_stats=reference)


def test_track_command_reference_stats(hf_model_dir, reference, tmp_path, capsys):
    folder = tmp_path / "step5"
    images = validation_images(folder, 3)
    for p, prompt in zip(images, PROMPTS):
        p.with_suffix(".txt").write_text(prompt)
    code = main(["track", str(tmp_path / "run"), "--images-dir", str(folder), "--step", "5", "--model",
                 f"hf:{hf_model_dir}", "--device", "cpu", "--no-images", "--reference-stats", str(reference)])
    assert code == 0, capsys.readouterr().err
    assert "clip/cmmd" in capsys.readouterr().out
    ref = np.asarray(load_reference(reference).embeddings, dtype=np.float64)
    x = reference_embeddings(hf_model_dir, images)
    logged = scalars(tmp_path / "run")
    assert logged["clip/cmmd"][0].step == 5
    assert logged["clip/cmmd"][0].value == pytest.approx(mmd_recipe(x, ref), rel=1e-4, abs=1e-6)
    assert logged["clip/vendi"][0].value == pytest.approx(vendi_recipe(x), rel=1e-5)

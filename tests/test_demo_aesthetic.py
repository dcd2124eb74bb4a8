"""The shipped demo aesthetic head (``src/clipgauge/demo/aesthetic``): its file format, and the bar of its model
card (a clean render ranks above its degraded copy >= 95% of the time) on fresh held-out renders, computed here
independently (safetensors + transformers + torch) and through ``clipgauge score``.

The renders use a seed that neither the trainer (``tools/train_demo_aesthetic.py``: training seed 0, validation
seed 1) nor the model card's evaluation (seed 5) uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_degradations import KINDS, sample_pairs
from safetensors.torch import load_file
from transformers import CLIPImageProcessorPil, CLIPModel

from clipgauge.cli import main
from clipgauge.demo import MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
HEAD_DIR = ROOT / "src" / "clipgauge" / "demo" / "aesthetic"
HEAD = HEAD_DIR / "head.safetensors"
#: held-out renders: a seed used by neither the training nor the model card
SEED = 2
PAIRS = 300  # 60 per kind
#: the bar of the model card (overall), and a floor per kind (60 pairs each: at most 6 wrong)
MIN_OVERALL, MIN_PER_KIND = 0.95, 0.90
LINEAR = (0, 3, 6, 9, 11)  # the LAION v2-relu layout: nn.Sequential indices of the linear layers


def reference_scores(images: list, head: dict[str, torch.Tensor]) -> np.ndarray:
    """The head on the demo CLIP's L2-normalised image embedding, with transformers and torch only (float64 out)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = CLIPModel.from_pretrained(MODEL_DIR).eval()
    processor = CLIPImageProcessorPil.from_pretrained(MODEL_DIR)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 100):
            pixels = processor(images=images[i : i + 100], return_tensors="pt")["pixel_values"]
            features = model.get_image_features(pixel_values=pixels)
            e = features if isinstance(features, torch.Tensor) else features.pooler_output
            x = e / e.norm(dim=-1, keepdim=True)
            for n, k in enumerate(LINEAR):
                x = x @ head[f"layers.{k}.weight"].T + head[f"layers.{k}.bias"]
                if n < len(LINEAR) - 1:
                    x = torch.relu(x)
            out.append(x[:, 0].double().numpy())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def held_out() -> tuple[list, np.ndarray, np.ndarray]:
    """(pairs, clean scores, degraded scores) on fresh renders of :data:`SEED`."""
    pairs = sample_pairs(PAIRS, SEED)
    head = load_file(str(HEAD))
    scores = reference_scores([p.clean for p in pairs] + [p.degraded for p in pairs], head)
    return pairs, scores[:PAIRS], scores[PAIRS:]


def test_head_file_is_a_float32_v2_relu_state_dict_for_the_demo_clip():
    head = load_file(str(HEAD))
    assert set(head) == {f"layers.{k}.{p}" for k in LINEAR for p in ("weight", "bias")}
    assert all(t.dtype == torch.float32 for t in head.values())
    width = json.loads((MODEL_DIR / "config.json").read_text())["projection_dim"]
    assert head["layers.0.weight"].shape[1] == width and head["layers.11.weight"].shape[0] == 1
    for a, b in zip(LINEAR, LINEAR[1:]):  # the widths chain
        assert head[f"layers.{b}.weight"].shape[1] == head[f"layers.{a}.weight"].shape[0]
    assert HEAD.stat().st_size < 1_000_000
    card = (HEAD_DIR / "README.md").read_text()
    assert "pairwise accuracy" in card and "not a LAION aesthetic predictor" in card.replace("**", "")
    package_data = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines()
                        if line.startswith("clipgauge = ["))  # [tool.setuptools.package-data]
    assert '"demo/aesthetic/*"' in package_data


def test_clean_renders_rank_above_degraded_copies(held_out):
    pairs, clean, degraded = held_out
    kinds = np.array([p.kind for p in pairs])
    right = clean > degraded
    assert right.mean() >= MIN_OVERALL, f"overall {right.mean():.3f}"
    per_kind = {k: float(right[kinds == k].mean()) for k in KINDS}
    assert min(per_kind.values()) >= MIN_PER_KIND, per_kind
    # the readable range of the card: clean about 7, degraded about 3
    assert 6.0 < clean.mean() < 8.0 and 2.0 < degraded.mean() < 4.5


def test_clipgauge_score_gives_the_same_scores(tmp_path, capsys, held_out):
    """``--metric aesthetic:head=demo`` on the demo CLIP, and ``--metric demo-aesthetic``: the same scores as the
    independent computation."""
    pairs, clean, degraded = held_out
    pairs, clean, degraded = pairs[:60], clean[:60], degraded[:60]
    rows = []
    for i, p in enumerate(pairs):
        for tag, image in (("clean", p.clean), ("degraded", p.degraded)):
            name = f"{i:03d}_{tag}.png"
            image.save(tmp_path / name)
            rows.append({"image": name, "prompt": p.scene.shapes[0].colour + " " + p.scene.shapes[0].shape})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.jsonl"
    code = main(["score", str(manifest), "--model", "demo", "--metric", "clip", "--metric",
                 "aesthetic:head=demo,model=demo", "--metric", "demo-aesthetic", "--out", str(out), "--device", "cpu"])
    capsys.readouterr()
    assert code == 0
    expected = np.stack([clean, degraded], axis=1).reshape(-1)
    for column in ("aesthetic", "demo_aesthetic"):
        got = np.array([json.loads(line)[column] for line in out.read_text().splitlines()], dtype=np.float64)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text())
    assert summary["aesthetic"]["version"] == "v2-relu"
    assert summary["provenance"]["metrics"]["aesthetic"]["head"]["source"] == "demo"


@pytest.mark.slow
def test_trainer_smoke_run(tmp_path):
    """``tools/train_demo_aesthetic.py`` end to end on a few pairs: a head the loader reads, a card, a log."""
    import train_demo_aesthetic

    from clipgauge.metrics.aesthetic_head import detect, read_state_dict

    out = tmp_path / "head"
    assert train_demo_aesthetic.main(["--out", str(out), "--train-pairs", "40", "--eval-pairs", "20", "--steps", "20",
                                      "--batch-size", "16", "--widths", "16,8,8,4", "--cache", str(tmp_path)]) == 0
    head = detect(read_state_dict(out / "head.safetensors"), out / "head.safetensors", "", {})
    assert head.version == "v2-relu" and head.widths == [64, 16, 8, 8, 4, 1]
    log = json.loads((out / "training_log.json").read_text())
    assert set(log["evaluation"]["per_kind"]) == set(KINDS) and "--cache" not in log["command"]
    assert "## Evaluation" in (out / "README.md").read_text()


def test_scorer_users_get_the_demo_aesthetic_score():
    """``DemoAesthetic().predict(Scorer("demo").embed_images(...))``, the Python route of docs/python-api.md: the
    scores of the independent computation (transformers + the head file + torch); a wrong width is one line."""
    from clipgauge import Scorer, UsageError
    from clipgauge.metrics.aesthetic import Aesthetic, DemoAesthetic

    pairs = sample_pairs(4, SEED + 1)
    images = [p.clean for p in pairs] + [p.degraded for p in pairs]
    expected = reference_scores(images, load_file(str(HEAD)))
    embeddings = Scorer("demo", device="cpu").embed_images(images)
    got = DemoAesthetic().predict(embeddings)
    assert got.dtype == np.float64 and got.shape == (len(images),)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # not normalised on the way in: predict normalises as the recipe does
    np.testing.assert_allclose(Aesthetic(head="demo").predict(3.0 * embeddings), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match="input width"):
        DemoAesthetic().predict(np.ones((2, embeddings.shape[1] + 1), dtype=np.float32))

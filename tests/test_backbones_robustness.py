"""clipgauge backbones --robustness --linear-probe: corruptions against their written-out ImageNet-C definitions,
the robustness tables on the demo model and its renders, and the linear probe against a direct scikit-learn fit."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from clipgauge.cli import main
from clipgauge.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_rng

LABELS = ["circle", "square", "triangle", "star"]


def _image(seed: int = 0, size: tuple[int, int] = (37, 29)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def _blur_reference(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian, radius int(4σ + 0.5), edges repeated — skimage's ``gaussian`` as ImageNet-C calls it."""
    r = int(4 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    k = np.exp(-t ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    pad = np.pad(x, ((r, r), (r, r), (0, 0)), mode="edge")
    rows = sum(k[i] * pad[i:i + x.shape[0], :, :] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, i:i + x.shape[1], :] for i in range(2 * r + 1))


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_corruptions_equal_their_written_out_definitions(severity):
    img = _image(severity)
    x = np.asarray(img, dtype=np.float64) / 255
    to8 = lambda v: np.uint8(np.clip(v, 0, 1) * 255)  # noqa: E731 - ImageNet-C's cast back to 8 bits

    c = SEVERITIES["gaussian_noise"][severity - 1]
    noise = np.random.default_rng([7, 3, 0, severity]).normal(size=x.shape, scale=c)
    got = corrupt(img, "gaussian_noise", severity, corruption_rng(7, 3, "gaussian_noise", severity))
    np.testing.assert_array_equal(np.asarray(got), to8(x + noise))

    c = SEVERITIES["contrast"][severity - 1]
    m = x.mean(axis=(0, 1), keepdims=True)
    np.testing.assert_array_equal(np.asarray(corrupt(img, "contrast", severity)), to8((x - m) * c + m))

    c = SEVERITIES["gaussian_blur"][severity - 1]
    got = np.asarray(corrupt(img, "gaussian_blur", severity)).astype(int)
    assert np.abs(got - to8(_blur_reference(x, c)).astype(int)).max() <= 1  # float rounding at the uint8 cast

    q = SEVERITIES["jpeg"][severity - 1]
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    np.testing.assert_array_equal(np.asarray(corrupt(img, "jpeg", severity)),
                                  np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))

    c = SEVERITIES["pixelate"][severity - 1]
    w, h = img.size
    ref = img.resize((int(w * c), int(h * c)), Image.Resampling.BOX).resize((w, h), Image.Resampling.BOX)
    np.testing.assert_array_equal(np.asarray(corrupt(img, "pixelate", severity)), np.asarray(ref))


def test_severity_parameters_are_imagenet_c():
    assert SEVERITIES == {"gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38), "gaussian_blur": (1, 2, 3, 4, 6),
                          "jpeg": (25, 18, 15, 10, 7), "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
                          "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25)}
    with pytest.raises(ValueError):
        corrupt(_image(), "fog", 1)
    with pytest.raises(ValueError):
        corrupt(_image(), "contrast", 6)


@pytest.fixture(scope="module")
def demo_run(hf_model_dir, tmp_path_factory):
    """The demo renders with a shape label, compared with --robustness --linear-probe label (demo vs tiny HF)."""
    folder = tmp_path_factory.mktemp("demo_rob")
    assert main(["demo", "--out", str(folder), "--per-prompt", "4"]) == 0
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["label"] = re.search(r"(circle|square|triangle|star)", r["shown"]).group(1)
    (folder / "labeled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    code = main(["backbones", str(folder / "labeled.jsonl"), "--model", "demo", "--model", f"hf:{hf_model_dir}",
                 "--device", "cpu", "--robustness", "--linear-probe", "label", "--labels-file",
                 str(folder / "labels.txt"), "--truth", "label", "--out", str(folder / "results.jsonl"),
                 "--report", str(folder / "report.html"), "--json", str(folder / "doc.json")])
    assert code == 0
    doc = json.loads((folder / "doc.json").read_text())
    return folder, rows, doc


def _demo_embeddings(folder, rows, corruption=None, severity=None):
    from clipgauge.scoring.scorer import Embedder

    e = Embedder("demo", device="cpu", batch_size=8)
    images = [Image.open(folder / r["image"]).convert("RGB") for r in rows]
    if corruption is not None:
        images = [corrupt(im, corruption, severity, corruption_rng(0, i, corruption, severity))
                  for i, im in enumerate(images)]
    return e.embed_images(images), e.embed_texts([r["prompt"] for r in rows])


def test_robustness_tables_on_the_demo_renders(demo_run):
    folder, rows, doc = demo_run
    rob = doc["robustness"]
    assert rob["rows"] == len(rows) and rob["seconds"] > 0
    assert len(rob["tables"]) == 2 * len(CORRUPTIONS) * 5
    img, txt = _demo_embeddings(folder, rows)
    clean = np.sum(img * txt, axis=1)
    results = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(clean, [r["cosine_b0"] for r in results], atol=1e-5)  # same as the score run
    for corruption, severity in [("gaussian_noise", 3), ("contrast", 5)]:
        cimg, _ = _demo_embeddings(folder, rows, corruption, severity)
        bad = np.sum(cimg * txt, axis=1)
        (entry,) = [t for t in rob["tables"] if (t["backbone"], t["corruption"], t["severity"])
                    == ("b0", corruption, severity)]
        assert entry["mean_abs_delta"] == pytest.approx(np.mean(np.abs(bad - clean)), abs=1e-5)
        assert entry["spearman"] == pytest.approx(spearmanr(clean, bad)[0], abs=1e-3)
        assert 0 <= entry["top1"] <= 1
    total = next(s for s in rob["summary"] if (s["backbone"], s["corruption"]) == ("b0", "all"))
    per = [s for s in rob["summary"] if s["backbone"] == "b0" and s["corruption"] != "all"]
    assert total["mce"] == pytest.approx(np.mean([s["ce"] for s in per]))
    assert total["relative_mce"] == pytest.approx(np.mean([s["ce"] for s in per]) - (1 - total["clean_top1"]))
    html = (folder / "report.html").read_text()
    assert "Robustness to corruptions" in html and "linear probe" in html


def test_linear_probe_equals_a_direct_scikit_learn_fit(demo_run):
    from sklearn.linear_model import LogisticRegression

    from clipgauge.stats.linear_probe import split_rows

    folder, rows, doc = demo_run
    probe = doc["linear_probe"]
    assert probe["classes"] == sorted(LABELS) and probe["seconds"] > 0
    assert {r["k"] for r in probe["rows"]} >= {1, 2, "full"}
    y = np.array([sorted(LABELS).index(r["label"]) for r in rows])
    train, val, test = split_rows(y, 0)
    assert test.tolist() == probe["test_rows"]
    img, _ = _demo_embeddings(folder, rows)
    x = img / np.linalg.norm(img, axis=1, keepdims=True)
    full = next(r for r in probe["rows"] if (r["backbone"], r["k"]) == ("b0", "full"))
    fit_rows = np.concatenate([train, val])
    (wd,) = full["weight_decay"]
    model = LogisticRegression(C=1 / (wd * len(fit_rows)), max_iter=1000).fit(x[fit_rows], y[fit_rows])
    assert full["top1"] == pytest.approx(np.mean(model.predict(x[test]) == y[test]))
    for r in probe["rows"]:
        if r["k"] != "full":
            assert len(r["runs"]) == probe["repeats"] and r["ci_low"] <= r["top1"] <= r["ci_high"]
    assert 0 <= probe["zeroshot"]["b0"] <= 1

"""``clipgauge classify`` / :func:`clipgauge.classify` with the shipped demo CLIP on fresh renders (seeds not used in
training), against the CLIP paper's recipe computed here with transformers; its errors and its report section."""

from __future__ import annotations

import json
from pathlib import Path

import demo_sampling
import numpy as np
import pytest
import torch
from demo_evaluate import EVAL_SEED, render_single_objects
from scipy.special import softmax

from clipgauge.cli import main
from clipgauge.demo import MODEL_DIR
from clipgauge.errors import UsageError
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.sinks.results import read_results
from clipgauge.zeroshot.classify import classify

LABELS = [s.caption for s in demo_sampling.single_object_specs()]  # the 32 colour x shape captions
N = 64  # two fresh renders per label


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> Path:
    """A folder of images without prompts (no .txt sidecars) and a manifest with a ground-truth column."""
    root = tmp_path_factory.mktemp("classify")
    images, classes = render_single_objects(N, seed=EVAL_SEED + 1414)
    (root / "images").mkdir()
    rows = []
    for i, (im, c) in enumerate(zip(images, classes)):
        im.save(root / "images" / f"{i:03d}.png")
        rows.append({"image": f"images/{i:03d}.png", "class": LABELS[c]})
    (root / "truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_without_prompts_is_classified_at_least_90_percent_top1(renders) -> None:
    result = classify(renders / "images", LABELS, model="demo", out=renders / "folder.jsonl",
                      options=ScoreOptions(device="cpu"))
    rows = read_results(renders / "folder.jsonl")
    assert len(rows) == N and result.n_errors == 0 and all(r["error"] is None for r in rows)
    truth = {r["image"]: r["class"] for r in map(json.loads, (renders / "truth.jsonl").read_text().splitlines())}
    top1 = np.mean([truth[f"images/{r['image']}"] == r["label"] for r in rows])
    assert top1 >= 0.9, top1
    top = json.loads(rows[0]["top_labels"])
    assert len(top) == 5 and top[0]["label"] == rows[0]["label"]
    assert all(a["probability"] >= b["probability"] for a, b in zip(top, top[1:]))
    assert all(0.0 <= r["probability"] <= 1.0 for r in rows)


def test_probabilities_are_the_clip_paper_recipe_with_the_models_logit_scale(renders) -> None:
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    templates = ["{}", "a photo of {}"]
    labels = LABELS[:8]
    classify(renders / "truth.jsonl", labels, templates=templates, truth=None, model="demo", top_k=8,
             out=renders / "recipe.jsonl", options=ScoreOptions(device="cpu", batch_size=5))
    rows = read_results(renders / "recipe.jsonl")[:12]
    model = CLIPModel.from_pretrained(MODEL_DIR).eval()
    tok, proc = CLIPTokenizer.from_pretrained(MODEL_DIR), CLIPImageProcessorPil.from_pretrained(MODEL_DIR)
    from PIL import Image

    with torch.no_grad():
        pixels = proc(images=[Image.open(renders / r["image"]).convert("RGB") for r in rows],
                      return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pixels).pooler_output
        img = img / img.norm(dim=-1, keepdim=True)
        weights = []
        for label in labels:  # zeroshot_classifier of the CLIP paper's notebook
            t = tok([tpl.format(label) for tpl in templates], padding=True, return_tensors="pt")
            e = model.get_text_features(**t).pooler_output
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(dim=0)
            weights.append(e / e.norm())
        logits = model.logit_scale.exp() * img @ torch.stack(weights).T
    ref = softmax(logits.double().numpy(), axis=1)
    for r, p in zip(rows, ref):
        assert r["label"] == labels[int(p.argmax())]
        assert r["probability"] == pytest.approx(float(p.max()), abs=1e-5)
        got = {x["label"]: x["probability"] for x in json.loads(r["top_labels"])}
        for j, label in enumerate(labels):
            assert got[label] == pytest.approx(float(p[j]), abs=2e-6)  # stored rounded to 6 decimals
    summary = json.loads((renders / "recipe.jsonl.summary.json").read_text())
    prov = summary["provenance"]["metrics"]["zeroshot"]
    assert prov["logit_scale"] == pytest.approx(float(model.logit_scale.detach().exp()), rel=1e-6)
    assert prov["templates"] == templates


def test_cli_with_ground_truth_reports_accuracy_and_confusion(capsys, renders) -> None:
    code, out, err = run(capsys, "classify", renders / "truth.jsonl", "--labels", ",".join(LABELS), "--truth",
                         "class", "--model", "demo", "--device", "cpu", "--out", renders / "truth_out.jsonl",
                         "--json")
    assert code == 0, err
    c = json.loads(out)["classification"]
    rows = read_results(renders / "truth_out.jsonl")
    assert c["n"] == N and c["top1"] >= 0.9
    assert c["top1"] == pytest.approx(np.mean([r["correct"] for r in rows]), abs=1e-12)
    assert c["top5"] == pytest.approx(np.mean([r["true_rank"] <= 5 for r in rows]), abs=1e-12)
    assert sum(map(sum, c["confusion"])) == N
    assert all(r["true_label"] == r["class"] for r in rows)


def test_report_has_confusion_matrix_and_worst_images(renders, tmp_path) -> None:
    from clipgauge.report.build import build_report

    if not (renders / "truth_out.jsonl").exists():
        classify(renders / "truth.jsonl", LABELS, truth="class", model="demo", out=renders / "truth_out.jsonl",
                 options=ScoreOptions(device="cpu"))
    result = build_report([renders / "truth_out.jsonl"], tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "classification" in result.sections
    assert 'id="confusion-0"' in html and "Worst classified" in html
    assert html.count("data:image/jpeg;base64,") >= 24  # the worst images' thumbnails (and the grid's)


@pytest.mark.parametrize("args, message", [
    (["--labels-file", "missing.txt"], "labels file not found"),
    (["--labels", " , "], "no labels"),
    (["--labels", "a,b", "--template", "a photo"], "has no '{}'"),
    (["--labels", "a,b", "--truth", "nope"], "no ground-truth column 'nope'"),
    ([], "give the labels"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, renders, args, message) -> None:
    code, _, err = run(capsys, "classify", renders / "truth.jsonl", "--model", "demo", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_no_images_is_a_usage_error(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        classify(tmp_path / "empty", ["a", "b"], model="demo", options=ScoreOptions(device="cpu"))


def test_open_clip_probabilities_follow_its_own_encoders_and_logit_scale(tmp_path, openclip_checkpoint) -> None:
    open_clip = pytest.importorskip("open_clip")
    from conftest import random_rgb
    from tiny_clip import TINY_OPENCLIP_ARCH

    for i in range(4):
        random_rgb(i, size=(90 + 10 * i, 120)).save(tmp_path / f"{i}.png")
    labels, templates = ["cat", "dog", "bird"], ["a photo of a {}.", "a {}"]
    classify(tmp_path, labels, templates=templates, model=f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}",
             top_k=3, out=tmp_path / "out.jsonl", options=ScoreOptions(device="cpu"))
    rows = read_results(tmp_path / "out.jsonl")
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_OPENCLIP_ARCH,
                                                                 pretrained=str(openclip_checkpoint))
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_OPENCLIP_ARCH)
    from PIL import Image

    with torch.no_grad():
        img = torch.stack([model.encode_image(preprocess(Image.open(tmp_path / r["image"]).convert("RGB"))[None],
                                              normalize=True)[0] for r in rows])
        weights = []
        for label in labels:
            e = model.encode_text(tokenizer([t.format(label) for t in templates]), normalize=True).mean(dim=0)
            weights.append(e / e.norm())
        ref = softmax((model.logit_scale.exp() * img @ torch.stack(weights).T).double().numpy(), axis=1)
    assert np.ptp(ref) > 1e-3  # not uniform: the check can tell labels apart
    for r, p in zip(rows, ref):
        got = {x["label"]: x["probability"] for x in json.loads(r["top_labels"])}
        np.testing.assert_allclose([got[label] for label in labels], p, atol=1e-4)
        assert r["label"] == labels[int(p.argmax())]

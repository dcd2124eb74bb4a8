"""``clip_iqa`` (CLIP-IQA): the published recipe recomputed with transformers + torch, torchmetrics'
``CLIPImageQualityAssessment`` on the same local model, the ``prompts=`` syntax, and the pipeline contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from clipgauge.errors import UsageError
from clipgauge.metrics.clip_iqa import PROMPTS, ClipIQA, parse_prompts
from clipgauge.metrics.registry import metric_class, parse_metric
from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan
from clipgauge.runs import score
from clipgauge.sinks import read_results

SPEC = "clip_iqa:prompts=quality,sharpness|Nice, clean photo./Ugly photo.|warm"
PAIRS = [("Good photo.", "Bad photo."), ("Sharp photo.", "Blurry photo."), ("Nice, clean photo.", "Ugly photo."),
         ("Warm photo.", "Cold photo.")]
COLUMNS = ["clip_iqa", "clip_iqa_sharpness", "clip_iqa_user_defined_0", "clip_iqa_warm"]
SIZES = [(224, 224), (300, 200), (97, 131), (64, 480), (512, 384), (240, 241)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[Image.Image]]:
    """PNG images of several sizes (resize and crop matter) and a manifest; the last row's image is missing."""
    folder = tmp_path_factory.mktemp("clip_iqa")
    images = [random_rgb(10 + i, size=s) for i, s in enumerate(SIZES)]
    rows = []
    for i, img in enumerate(images):
        img.save(folder / f"{i}.png")
        rows.append({"image": f"{i}.png", "prompt": f"picture {i}"})
    rows.append({"image": "missing.png", "prompt": "gone"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder, images


@pytest.fixture(scope="module")
def results(dataset, hf_model_dir) -> list[dict]:
    """clip + clip_iqa on the tiny transformers CLIP, with a prompt prefix (which CLIP-IQA's prompts must not get)."""
    folder, _ = dataset
    out = folder / "results.jsonl"
    score(folder / "manifest.jsonl", out, ScoreOptions(metrics=["clip", SPEC], model=f"hf:{hf_model_dir}",
                                                       device="cpu", batch_size=4, prompt_prefix="a photo of "))
    return read_results(out)


def _ours(rows: list[dict]) -> np.ndarray:
    return np.array([[r[c] for c in COLUMNS] for r in rows[: len(SIZES)]], dtype=np.float64)


def _hf_model(model_dir):
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(model_dir).eval()


def _features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


# ---------------------------------------------------------------------- the published recipe

def test_matches_the_published_recipe(results, dataset, hf_model_dir):
    """CLIP-IQA as the paper and torchmetrics define it, with transformers and torch alone: L2-normalised image
    features (CLIP's own preprocessing) against the L2-normalised features of the bare pair prompts, softmax of
    100 x cosine over each pair, the positive prompt's probability."""
    from transformers import CLIPImageProcessorPil, CLIPTokenizer

    _, images = dataset
    model = _hf_model(hf_model_dir)
    tok = CLIPTokenizer.from_pretrained(hf_model_dir)
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)
    texts = [t for pair in PAIRS for t in pair]
    with torch.no_grad():
        text = _features(model.get_text_features(**tok(texts, padding=True, return_tensors="pt")))
        pixels = proc(images=images, return_tensors="pt")["pixel_values"]
        image = _features(model.get_image_features(pixel_values=pixels))
    text = text / text.norm(p=2, dim=-1, keepdim=True)
    image = image / image.norm(p=2, dim=-1, keepdim=True)
    logits = 100 * image @ text.t()
    expected = logits.reshape(len(images), -1, 2).softmax(-1)[:, :, 0].double().numpy()
    ours = _ours(results)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=0)
    assert ((ours > 0) & (ours < 1)).all()
    assert np.ptp(ours, axis=0).min() > 0.05  # no pair saturated, the images told apart: the check means something
    assert all(results[-1][c] is None for c in COLUMNS) and "not found" in results[-1]["error"]
    assert results[0]["cosine"] is not None  # clip's columns are there too


def test_prompt_prefix_is_not_applied_to_the_pair_prompts(results, hf_model_dir, dataset):
    """With the prefix the numbers would differ (the test above passes only without it): check that they do."""
    from clipgauge import Scorer
    from clipgauge.metrics.clip_iqa import embed_prompts, pair_probabilities

    prefixed = Scorer(f"hf:{hf_model_dir}", device="cpu", prompt_prefix="a photo of ")
    anchors = prefixed.embed_texts([t for pair in PAIRS for t in pair])  # embed_texts applies the prefix
    bare = embed_prompts(prefixed, [t for pair in PAIRS for t in pair])
    assert not np.allclose(anchors, bare, atol=1e-3)
    image = prefixed.embed_images(dataset[1])
    np.testing.assert_allclose(pair_probabilities(image, bare), _ours(results), rtol=1e-5)


# ---------------------------------------------------------------------- torchmetrics

def _torchmetrics_model(model_dir, pil_processor: bool):
    """torchmetrics 1.9 loads only ``openai/...`` names (and, under transformers 5, expects tensors from
    ``get_*_features``): the tiny local model goes through its documented ``model_name_or_path=callable`` hook."""
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil, CLIPProcessor, CLIPTokenizer

    model = _hf_model(model_dir)
    image_processor = (CLIPImageProcessorPil if pil_processor else CLIPImageProcessor).from_pretrained(model_dir)
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer.from_pretrained(model_dir))
    image_features, text_features = model.get_image_features, model.get_text_features
    model.get_image_features = lambda *a, **k: _features(image_features(*a, **k))
    model.get_text_features = lambda *a, **k: _features(text_features(*a, **k))
    return model, processor


def _torchmetrics_scores(model_dir, images, *, pil_processor: bool, data_range: float, divide: float) -> np.ndarray:
    from torchmetrics.multimodal import CLIPImageQualityAssessment

    prompts = ("quality", "sharpness", PAIRS[2], "warm")
    metric = CLIPImageQualityAssessment(model_name_or_path=lambda: _torchmetrics_model(model_dir, pil_processor),
                                        data_range=data_range, prompts=prompts)
    for img in images:  # one image per update: the sizes differ
        pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / divide
        metric.update(pixels)
    out = metric.compute()
    return torch.stack([out[name] for name in ("quality", "sharpness", "user_defined_0", "warm")], 1).double().numpy()


def test_agrees_with_torchmetrics_on_the_same_local_model(results, dataset, hf_model_dir):
    """torchmetrics' ``CLIPImageQualityAssessment`` on the same model, fed so that its processor sees 0-255 pixels
    (float tensors of the uint8 values, ``data_range=1``), with the PIL image processor: equal within 1e-4."""
    pytest.importorskip("torchmetrics")
    tm = _torchmetrics_scores(hf_model_dir, dataset[1], pil_processor=True, data_range=1.0, divide=1.0)
    np.testing.assert_allclose(_ours(results), tm, rtol=1e-4, atol=0)


def test_torchmetrics_defaults_differ_as_documented(results, dataset, hf_model_dir):
    """What docs/metrics/clip_iqa.md states about torchmetrics' own defaults (update the page if this fails).

    * transformers 5's default image processor (the torchvision backend) moves the scores by a little;
    * the documented ``data_range`` use (pixels / data_range in [0, 1]) is rescaled by 1/255 a second time by the
      processor: every image becomes nearly black and the scores no longer depend on the image.
    """
    pytest.importorskip("torchmetrics")
    ours = _ours(results)
    default = _torchmetrics_scores(hf_model_dir, dataset[1], pil_processor=False, data_range=1.0, divide=1.0)
    gap = np.abs(default - ours).max()
    assert 0 < gap < 0.05, gap
    documented = _torchmetrics_scores(hf_model_dir, dataset[1], pil_processor=True, data_range=255.0, divide=1.0)
    assert np.ptp(documented, axis=0).max() < 1e-3 < np.ptp(ours, axis=0).max()


# ---------------------------------------------------------------------- options, columns, pipeline

def test_prompt_syntax():
    assert [p[0] for p in parse_prompts("quality,brightness")] == ["quality", "brightness"]
    assert parse_prompts("quality|crisp:Crisp, clean photo./Muddy photo.")[1] == (
        "crisp", "Crisp, clean photo.", "Muddy photo.")
    assert parse_prompts("Nice photo./Ugly photo.|colorfulness,sharpness") == [
        ("user_defined_0", "Nice photo.", "Ugly photo."), ("colorfullness", *PROMPTS["colorfullness"]),
        ("sharpness", *PROMPTS["sharpness"])]
    assert parse_prompts(("quality", ("A.", "B."), "C./D.")) == [
        ("quality", "Good photo.", "Bad photo."), ("user_defined_0", "A.", "B."), ("user_defined_1", "C.", "D.")]
    # a comma starts a new metric option only before KEY=, so a prompts value keeps its commas
    spec = parse_metric("clip_iqa:prompts=quality,sharpness|mine:Crisp, clean./Muddy.,model=demo")
    metric = spec.build()
    assert metric.model == "demo"
    assert [c.name for c in metric.columns()] == ["clip_iqa", "clip_iqa_sharpness", "clip_iqa_mine"]
    assert parse_prompts("Photo: good./Photo: bad.")[0][1:] == ("Photo: good.", "Photo: bad.")  # not a NAME:
    for bad in ("foo", "a/b/c", "quality,quality", "/b", "x:A./B.|x:C./D."):
        with pytest.raises(UsageError):
            ClipIQA(prompts=bad)
    with pytest.raises(UsageError):
        ClipIQA(prompt="quality")


def test_columns_and_defaults():
    assert metric_class("clip_iqa") is ClipIQA
    metric = ClipIQA()
    assert [c.name for c in metric.columns()] == ["clip_iqa"] and metric.texts == ["Good photo.", "Bad photo."]
    every = ClipIQA(prompts=",".join(PROMPTS) + "|Nice./Ugly.").columns()
    assert len(every) == len(PROMPTS) + 1
    better = {c.name: c.higher_is_better for c in every}
    assert {n for n, b in better.items() if b} == {"clip_iqa", "clip_iqa_noisiness", "clip_iqa_sharpness",
                                                    "clip_iqa_beautiful", "clip_iqa_user_defined_0"}
    assert all(b is None for n, b in better.items() if n in ("clip_iqa_brightness", "clip_iqa_scary"))
    assert all(c.range == (0.0, 1.0) and c.unit == "probability" and c.type == "float64" for c in every)
    # the model follows the run's --model; a different prompt list changes the fingerprint
    opts = ScoreOptions(metrics=["clip", "clip_iqa"], model="demo")
    assert [(c.name, o.get("model")) for c, o in opts.resolved()] == [("clip", "demo"), ("clip_iqa", "demo"),
                                                                      ("language", None)]
    assert ClipIQA(prompts="quality").fingerprint() != ClipIQA(prompts="quality,warm").fingerprint()


def test_shares_the_image_embeddings_of_clip(dataset):
    """One model: clip and clip_iqa ask for the same image need, so each image is embedded once for both."""
    plan = ScoringPlan(ScoreOptions(metrics=["clip", "clip_iqa"], model="demo", device="cpu"))
    assert [n for n in plan.needs if n.kind == "image_embedding"] == [plan.metrics[1].needs()[0]]
    assert not plan.decode_once
    plan.load()
    assert list(plan.embedders) == ["demo"]
    prov = plan.provenance()["metrics"]["clip_iqa"]
    assert prov["logit_scale"] == 100.0 and prov["pairs"]["clip_iqa"] == {"positive": "Good photo.",
                                                                        "negative": "Bad photo."}


def test_alone_with_empty_prompts_and_from_the_cli(dataset, tmp_path):
    """CLIP-IQA reads no prompt (an empty one does not stop a row); the CLI takes the metric with its options."""
    from clipgauge.cli import main

    folder, _ = dataset
    manifest = tmp_path / "images.jsonl"
    manifest.write_text("".join(json.dumps({"image": str(folder / f"{i}.png"), "prompt": ""}) + "\n" for i in range(3)))
    out = tmp_path / "iqa.jsonl"
    assert main(["score", str(manifest), "--model", "demo", "--device", "cpu", "--out", str(out),
                 "--metric", "clip_iqa:prompts=quality,brightness"]) == 0
    rows = read_results(out)
    assert all(r["error"] is None and 0 < r["clip_iqa"] < 1 and 0 < r["clip_iqa_brightness"] < 1 for r in rows)
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["clip_iqa"]["n"] == 3 and "clip_iqa_brightness" in summary


def test_open_clip_backbone(dataset, openclip_checkpoint, tmp_path):
    """Any backbone clipgauge loads: an OpenCLIP model, checked against open_clip's own preprocessing and
    tokenizer (the model given with the metric's ``model=`` option, not the run's ``--model``)."""
    import open_clip
    from tiny_clip import TINY_OPENCLIP_ARCH

    folder, images = dataset
    spec = f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}"
    out = tmp_path / "oc.jsonl"
    score(folder / "manifest.jsonl", out, ScoreOptions(metrics=[f"clip_iqa:prompts=quality,contrast,model={spec}"],
                                                       model="demo", device="cpu"))
    rows = read_results(out)[: len(SIZES)]
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_OPENCLIP_ARCH,
                                                                 pretrained=str(openclip_checkpoint))
    tokenizer = open_clip.get_tokenizer(TINY_OPENCLIP_ARCH)
    with torch.no_grad():
        texts = ["Good photo.", "Bad photo.", "High contrast photo.", "Low contrast photo."]
        text = model.eval().encode_text(tokenizer(texts))
        image = model.encode_image(torch.stack([preprocess(img) for img in images]))
    text, image = text / text.norm(dim=-1, keepdim=True), image / image.norm(dim=-1, keepdim=True)
    expected = (100 * image @ text.t()).reshape(len(images), 2, 2).softmax(-1)[:, :, 0].double().numpy()
    ours = np.array([[r["clip_iqa"], r["clip_iqa_contrast"]] for r in rows])
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=0)
    assert np.ptp(ours, axis=0).min() > 0.05  # neither pair saturated: the comparison means something

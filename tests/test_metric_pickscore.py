"""``pickscore``: PickScore v1 against its README recipe, run with transformers alone on a small random CLIPModel.

The published layout is rebuilt: a model folder holding only ``config.json`` and the weights (as
``yuvalkirstain/PickScore_v1`` is used: its tokenizer and image processor are not taken from it), and a separate
processor folder with the CLIP tokenizer and a legacy ``preprocessor_config.json`` (the laion ViT-H/14 repo's kind).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line_score_error, random_rgb
from PIL import Image
from tiny_clip import save_clip_tokenizer, save_tiny_hf_clip

from clipgauge.cli import main
from clipgauge.errors import ModelLoadError, UsageError
from clipgauge.metrics.pickscore import (
    DEFAULT_MODEL,
    DEFAULT_PROCESSOR,
    PickScore,
    pickscore_probabilities,
    pickscore_spec,
    probabilities_for_rows,
)
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.runs import score
from clipgauge.sinks import read_results

PROCESSOR_CONFIG = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                    "feature_extractor_type": "CLIPFeatureExtractor",
                    "image_mean": [0.48145466, 0.4578275, 0.40821073],
                    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}
PROMPTS = ["a red fox in the snow", "a bowl of ramen, studio lighting", "an astronaut riding a horse, " * 12]


@pytest.fixture(scope="module")
def pickscore_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """(model folder: config.json + model.safetensors only, processor folder: tokenizer + preprocessor config)."""
    from transformers import CLIPModel

    root = tmp_path_factory.mktemp("pickscore")
    model_dir = save_tiny_hf_clip(root / "model", seed=3, eos_token_id=2)  # PickScore_v1's config: legacy eos id
    model = CLIPModel.from_pretrained(model_dir)
    with torch.no_grad():
        model.logit_scale.fill_(4.4)  # not the init value: the score must use the model's own scale
    for f in list(model_dir.iterdir()):
        f.unlink()
    model.save_pretrained(model_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors"]
    processor_dir = root / "processor"
    save_clip_tokenizer(processor_dir)
    (processor_dir / "preprocessor_config.json").write_text(json.dumps(PROCESSOR_CONFIG), encoding="utf-8")
    return model_dir, processor_dir


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A manifest of 3 prompts with 3, 4 and 2 images (sizes vary; PNG and JPEG), rows of a prompt not adjacent."""
    folder = tmp_path_factory.mktemp("pickscore_images")
    rows = []
    counts = [3, 4, 2]
    k = 0
    for rep in range(max(counts)):
        for p, n in enumerate(counts):
            if rep < n:
                img = random_rgb(100 + k, size=(80 + 24 * k, 300 - 13 * k))
                name = f"img_{k}.{'jpg' if k % 2 else 'png'}"
                img.save(folder / name, quality=92) if k % 2 else img.save(folder / name)
                rows.append({"id": f"r{k}", "image": name, "prompt": PROMPTS[p]})
                k += 1
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder, rows


def readme_calc(model_dir: Path, processor_dir: Path, prompt: str, images: list) -> tuple[list[float], list[float]]:
    """PickScore's README ``calc_probs`` with transformers alone (scores and probabilities); the processor is
    CLIPProcessor with the PIL image processor (the original CLIP preprocessing)."""
    from transformers import AutoModel, CLIPImageProcessorPil, CLIPProcessor, CLIPTokenizer

    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil.from_pretrained(processor_dir),
                              tokenizer=CLIPTokenizer.from_pretrained(processor_dir))
    model = AutoModel.from_pretrained(model_dir).eval()
    image_inputs = processor(images=images, padding=True, truncation=True, max_length=77, return_tensors="pt")
    text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        image_embs = model.get_image_features(**image_inputs)
        image_embs = getattr(image_embs, "pooler_output", image_embs)
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = model.get_text_features(**text_inputs)
        text_embs = getattr(text_embs, "pooler_output", text_embs)
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        scores = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
        probs = torch.softmax(scores, dim=-1)
    return scores.tolist(), probs.tolist()


def test_scores_and_probabilities_match_the_readme_recipe(capsys, pickscore_dirs, groups):
    model_dir, processor_dir = pickscore_dirs
    folder, rows = groups
    out = folder / "results.jsonl"
    code = main(["score", str(folder / "manifest.jsonl"), "--model", "demo", "--metric", "clip",
                 "--metric", f"pickscore:model={model_dir},processor={processor_dir}", "--batch-size", "2",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    written = read_results(out)
    assert all(r["error"] is None for r in written)
    results = {r["id"]: r for r in written}
    probs = dict(zip([r["id"] for r in written], probabilities_for_rows(written)))  # groups straddle batches
    for prompt in PROMPTS:
        group = [r for r in rows if r["prompt"] == prompt]
        want_scores, want_probs = readme_calc(model_dir, processor_dir, prompt,
                                              [Image.open(folder / r["image"]) for r in group])
        got_scores = [results[r["id"]]["pickscore"] for r in group]
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4)
        np.testing.assert_allclose([probs[r["id"]] for r in group], want_probs, rtol=1e-4)
        # the run column written by the pipeline once every row was scored (groups straddle batches)
        np.testing.assert_allclose([results[r["id"]]["pickscore_prob"] for r in group], want_probs, rtol=1e-4)
    assert math.isclose(sum(probs.values()), len(PROMPTS), rel_tol=1e-9)

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["pickscore"]["n"] == len(rows) and summary["pickscore_prob"]["n"] == len(rows)
    assert "pickscore_prob" in [c["name"] for c in summary["columns"]]
    assert math.isclose(summary["pickscore"]["logit_scale_exp"], math.exp(4.4), rel_tol=1e-6)
    prov = summary["provenance"]["metrics"]["pickscore"]
    files = {f["role"]: f for f in prov["files"]}
    assert files["weights"]["sha256"] == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    config = processor_dir / "preprocessor_config.json"
    assert files["processor_config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert prov["processor"] == str(processor_dir) and "softmax" in prov["probability"]
    spec = pickscore_spec(str(model_dir), str(processor_dir))
    model_prov = summary["provenance"]["models"][spec]
    assert model_prov["family"] == "transformers" and model_prov["spec"] == spec
    column = next(c for c in summary["columns"] if c["name"] == "pickscore")
    assert column["higher_is_better"] is True and column["metric"] == "pickscore"


def test_the_model_is_one_shared_embedder(pickscore_dirs, groups, tmp_path):
    """``clip`` on the same ``pickscore:`` model spec shares the loaded model: pickscore = scale x its cosine."""
    model_dir, processor_dir = pickscore_dirs
    folder, _ = groups
    spec = pickscore_spec(str(model_dir), str(processor_dir))
    result = score(folder / "manifest.jsonl", tmp_path / "r.jsonl", ScoreOptions(
        metrics=["clip", f"pickscore:model={model_dir},processor={processor_dir}"], model=spec, device="cpu"))
    assert list(result.summary["provenance"].get("models", {})) == []  # one model only
    for r in read_results(tmp_path / "r.jsonl"):
        assert math.isclose(r["pickscore"], math.exp(4.4) * r["cosine"], rel_tol=1e-5, abs_tol=1e-9)


def test_probabilities_follow_the_readme_softmax():
    scores = [21.5, 19.0, None, 23.25, float("nan"), 20.0, 1000.0, 999.0]
    keys = ["a", "a", "a", "b", "b", "b", "c", "c"]
    got = pickscore_probabilities(scores, keys)
    np.testing.assert_allclose(got[[0, 1]], torch.softmax(torch.tensor([21.5, 19.0]), -1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(got[[3, 5]], torch.softmax(torch.tensor([23.25, 20.0]), -1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(got[[6, 7]], torch.softmax(torch.tensor([1000.0, 999.0]), -1).numpy(), rtol=1e-6)
    assert np.isnan(got[2]) and np.isnan(got[4])
    assert pickscore_probabilities([20.0], ["only"]).tolist() == [1.0]
    assert np.isnan(pickscore_probabilities([20.0], [None])[0])
    with pytest.raises(ValueError):
        pickscore_probabilities([1.0, 2.0], ["a"])
    rows = [{"pickscore": 20.0, "prompt": "x"}, {"pickscore": 22.0, "prompt": "x"}, {"pickscore": None, "prompt": "y"}]
    probs = probabilities_for_rows(rows)
    assert probs[2] is None and math.isclose(probs[0] + probs[1], 1.0)
    with pytest.raises(UsageError, match="no 'prompt_id' column"):
        probabilities_for_rows(rows, group="prompt_id")


def test_finalize_gives_the_whole_run_probability_column():
    metric = PickScore()
    assert [c.name for c in metric.run_columns()] == ["pickscore_prob"]
    out = metric.finalize({"pickscore": np.array([20.0, 21.0, 19.0])}, ["p", "q", "p"])
    np.testing.assert_allclose(out["pickscore_prob"], [1 / (1 + math.exp(-1.0)), 1.0, 1 / (1 + math.exp(1.0))])


def test_defaults_and_options():
    metric = PickScore()
    assert metric.spec == f"pickscore:{DEFAULT_MODEL}|{DEFAULT_PROCESSOR}"
    assert PickScore.inherits == ()
    opts = ScoreOptions(metrics=["pickscore"], model="demo").resolved()
    assert opts[0][1] == {}  # --model does not move PickScore's backbone
    with pytest.raises(UsageError, match="no option"):
        PickScore(scale="cosine")
    with pytest.raises(UsageError, match="cannot hold"):
        PickScore(model="a|b")


def test_offline_hub_defaults_fail_in_one_line(capsys, groups, pickscore_dirs, monkeypatch, tmp_path):
    import huggingface_hub.constants

    # an empty cache, even where the real files are cached (HF_HUB_OFFLINE=1 from conftest)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    folder, _ = groups
    err = one_line_score_error(capsys, folder, "pickscore")
    assert f"PickScore model '{DEFAULT_MODEL}' is not in the local Hugging Face cache" in err
    model_dir, _ = pickscore_dirs
    err = one_line_score_error(capsys, folder, f"pickscore:model={model_dir}")
    assert f"PickScore tokenizer and image processor '{DEFAULT_PROCESSOR}' is not in the local" in err


def test_bad_files_fail_in_one_line(capsys, groups, pickscore_dirs, tmp_path):
    folder, _ = groups
    model_dir, processor_dir = pickscore_dirs
    # what transformers' from_pretrained refuses, in one line naming the option and the folder
    err = one_line_score_error(capsys, folder, f"pickscore:model={tmp_path},processor={processor_dir}")
    assert f"pickscore:model={tmp_path}: cannot load a transformers CLIP model from {tmp_path}: " in err
    err = one_line_score_error(capsys, folder, f"pickscore:model={model_dir},processor={model_dir}")
    assert f"pickscore:processor={model_dir}: " in err and "Can't load image processor" in err
    err = one_line_score_error(capsys, folder, f"pickscore:model=./no/such/folder,processor={processor_dir}")
    assert "pickscore:model=./no/such/folder: no such file or folder, and not a hub id ORG/NAME" in err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    err = one_line_score_error(capsys, folder, f"pickscore:model={broken},processor={processor_dir}")
    assert "cannot load a transformers CLIP model" in err

    bad_proc = tmp_path / "bad_processor"
    bad_proc.mkdir()
    (bad_proc / "preprocessor_config.json").write_text(json.dumps(PROCESSOR_CONFIG))  # no tokenizer files
    err = one_line_score_error(capsys, folder, f"pickscore:model={model_dir},processor={bad_proc}")
    assert "has no vocabulary" in err


def test_spec_errors_are_model_load_errors():
    from clipgauge.encoders import parse_model_spec

    with pytest.raises(ModelLoadError, match="names no model"):
        parse_model_spec("pickscore:|x/y")
    parsed = parse_model_spec("pickscore:org/model")
    assert parsed.family == "pickscore" and parsed.source == "org/model"

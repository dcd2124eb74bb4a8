"""CLIP-I and RefCLIP-S, checked against transformers' own features and the CLIPScore paper's formula."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import random_rgb
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

from clipgauge.cli import main
from clipgauge.scoring.reference import parse_reference_texts, refclip_s
from clipgauge.sinks import read_results


def test_refclip_s_formula():
    # Hessel et al. 2021: H-mean(2.5 * max(cos(c, v), 0), max(max_r cos(c, r), 0))
    got = refclip_s(np.array([0.3, 0.3, -0.1, 0.2, np.nan]), np.array([0.8, -0.2, 0.5, 0.0, 0.5]))
    a = 2.5 * 0.3
    assert got[0] == pytest.approx(2 * a * 0.8 / (a + 0.8))
    assert got[1] == 0.0 and got[2] == 0.0 and got[3] == 0.0 and np.isnan(got[4])


def test_parse_reference_texts():
    assert parse_reference_texts("a cat") == ["a cat"]
    assert parse_reference_texts('["a cat", "a kitten"]') == ["a cat", "a kitten"]
    assert parse_reference_texts(["x", "y"]) == ["x", "y"]
    for bad in (None, [], "[not json", [1, 2]):
        with pytest.raises(ValueError):
            parse_reference_texts(bad)


@pytest.fixture()
def ref_manifest(tmp_path):
    rows = []
    for i in range(4):
        random_rgb(i).save(tmp_path / f"gen{i}.png")
    for j in range(2):
        random_rgb(100 + j, size=(120, 120)).save(tmp_path / f"ref{j}.png")
    refs = [["a red circle", "a round red shape"], "a dog", ["two stars", "a pair of stars", "stars"], "a cat"]
    prompts = ["a red circle", "a photo of a dog", "two yellow stars", "a cat on a mat"]
    for i in range(4):
        rows.append({"image": f"gen{i}.png", "prompt": prompts[i], "ref_image": f"ref{i % 2}.png", "refs": refs[i]})
    rows.append({"image": "gen0.png", "prompt": "x", "ref_image": "missing.png", "refs": "x"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path, rows


def test_clip_i_and_refclip_s_match_transformers(capsys, hf_model_dir, ref_manifest):
    folder, rows = ref_manifest
    code = main(["score", str(folder / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--out", str(folder / "r.jsonl"),
                 "--reference-image", "ref_image", "--reference-text", "refs"])
    capsys.readouterr()
    assert code == 1  # the last row's reference image is missing
    got = read_results(folder / "r.jsonl")
    assert len(got) == 5 and "reference image: file not found" in got[4]["error"]
    assert got[4]["cosine"] is not None and got[4]["clip_i"] is None  # its own score is kept

    model = CLIPModel.from_pretrained(hf_model_dir).eval()
    tok = CLIPTokenizer.from_pretrained(hf_model_dir)
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)
    from PIL import Image

    def img_feat(path):
        with torch.no_grad():
            px = proc(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
            return torch.nn.functional.normalize(model.get_image_features(pixel_values=px).pooler_output, dim=-1)[0]

    def txt_feat(text):
        with torch.no_grad():
            enc = tok([text], return_tensors="pt")
            return torch.nn.functional.normalize(model.get_text_features(**enc).pooler_output, dim=-1)[0]

    for g, r in zip(got[:4], rows[:4]):
        gen = img_feat(folder / r["image"])
        assert g["clip_i"] == pytest.approx(float(gen @ img_feat(folder / r["ref_image"])), abs=1e-4)
        refs = r["refs"] if isinstance(r["refs"], list) else [r["refs"]]
        best = max(float(txt_feat(r["prompt"]) @ txt_feat(t)) for t in refs)
        assert g["ref_cosine"] == pytest.approx(best, abs=1e-4)
        cos = float(gen @ txt_feat(r["prompt"]))
        a, b = 2.5 * max(cos, 0.0), max(best, 0.0)
        assert g["refclip_s"] == pytest.approx(0.0 if a + b == 0 else 2 * a * b / (a + b), abs=1e-4)
    summary = json.loads((folder / "r.jsonl.summary.json").read_text())
    assert summary["clip_i"]["n"] == 4 and summary["refclip_s"]["n"] == 5


def test_unknown_reference_column_is_usage_error(capsys, hf_model_dir, ref_manifest):
    folder, _ = ref_manifest
    code = main(["score", str(folder / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--reference-image", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "no 'nope' column" in err

"""The text context comes from the model, not a constant 77.

* A transformers CLIP with 248 positions (Long-CLIP in transformers format, e.g. ``zer0int/LongCLIP-L-Diffusers``)
  whose saved tokenizer says ``model_max_length=77`` scores a 150-token prompt untruncated, equal to transformers'
  own ``get_text_features`` on the untruncated tokens; the same prompt with a 77-position model is flagged.
* An OpenCLIP model uses its config's context length, and provenance records it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import random_rgb
from tiny_clip import register_tiny_openclip_arch, save_tiny_hf_clip

LONG = ("a small red bicycle leans against a weathered brick wall beside a flower shop, while an old man in a "
        "green coat reads a newspaper on a wooden bench under a striped awning. ") * 4


@pytest.fixture(scope="module")
def hf248_dir(tmp_path_factory):
    return save_tiny_hf_clip(tmp_path_factory.mktemp("hf248"), seed=3, max_position_embeddings=248)


def _reference_text(folder, prompt: str) -> np.ndarray:
    from transformers import CLIPModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(folder)
    ids = tok([prompt], truncation=False, return_tensors="pt")
    model = CLIPModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model.get_text_features(**ids)
    feats = out if isinstance(out, torch.Tensor) else out.pooler_output
    return (feats / feats.norm(dim=-1, keepdim=True)).numpy()[0], ids["input_ids"].shape[1]


def test_248_position_hf_model_scores_150_tokens_untruncated(hf248_dir, hf_model_dir, tmp_path):
    from clipgauge import Scorer
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score

    assert json.loads((hf248_dir / "tokenizer_config.json").read_text())["model_max_length"] == 77
    ref, n_tokens = _reference_text(hf248_dir, LONG)
    assert 140 <= n_tokens <= 160  # start and end tokens included

    scorer = Scorer(f"hf:{hf248_dir}", device="cpu")
    assert scorer.context_length == 248
    assert np.abs(scorer.embed_texts([LONG])[0] - ref).max() < 1e-4
    assert scorer.truncated([LONG]) == [False]

    image = tmp_path / "a.png"
    random_rgb(1).save(image)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "a.png", "prompt": LONG}) + "\n")
    for folder, truncated in ((hf248_dir, False), (hf_model_dir, True)):
        result = score(manifest, tmp_path / f"out-{truncated}.jsonl", ScoreOptions(model=f"hf:{folder}", device="cpu"))
        row = json.loads((tmp_path / f"out-{truncated}.jsonl").read_text().splitlines()[0])
        assert row["truncated"] is truncated and row["error"] is None
        assert result.summary["truncated"] == int(truncated)
        assert result.summary["provenance"]["model"]["context_length"] == (77 if truncated else 248)
    # the 77-position model scores the truncated prompt: its first 76 tokens and end-of-text
    short = Scorer(f"hf:{hf_model_dir}", device="cpu")
    assert short.context_length == 77 and short.truncated([LONG]) == [True]


def test_openclip_uses_its_own_context_length(tmp_path):
    import open_clip

    from clipgauge import Scorer

    arch = register_tiny_openclip_arch(tmp_path / "ctx100", name="clipgauge-tiny-ctx100", context_length=100)
    torch.manual_seed(2)
    model = open_clip.create_model(arch)
    path = tmp_path / "ctx100.pt"
    torch.save(model.state_dict(), path)

    scorer = Scorer(f"open_clip:{arch}:{path}", device="cpu")
    assert scorer.context_length == 100
    prompt = " ".join(["red"] * 90)  # 92 tokens: over 77, under 100
    assert scorer.truncated([prompt, " ".join(["red"] * 120)]) == [False, True]
    tokens = open_clip.get_tokenizer(arch)([prompt])
    assert tokens.shape[1] == 100
    with torch.no_grad():
        ref = model.eval().encode_text(tokens)
    ref = (ref / ref.norm(dim=-1, keepdim=True)).numpy()[0]
    assert np.abs(scorer.embed_texts([prompt])[0] - ref).max() < 1e-4
    prov = scorer.provenance()
    assert prov["model"]["context_length"] == 100 and "max 100 tokens" in prov["text"]["truncation"]

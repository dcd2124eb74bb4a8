"""``clip_chunks`` / ``--long-prompt chunks-mean|chunks-max``: long prompts scored in context-sized pieces.

Checked against transformers itself (``get_text_features`` on each expected piece, ``get_image_features`` on the
``CLIPImageProcessorPil`` pixels), with the pieces written out in the test from the splitting rule.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import random_rgb

from clipgauge.scoring.prompt_chunks import split_prompt

S1 = ("A small red bicycle with a wicker basket full of yellow tulips leans against a weathered brick wall beside a "
      "busy flower shop in the old part of town.")  # 31 tokens
S2 = ("An old man in a long green coat and a grey felt hat reads a folded newspaper on a wooden bench under a striped "
      "awning near the corner.")  # 30 tokens
S3 = ("Behind them, pigeons gather on the wet cobblestones, a laughing child in red boots chases them, and a blue tram "
      "passes slowly by the square.")  # 30 tokens


def _words_fit(limit: int):
    return lambda text: len(text.split()) <= limit


def test_split_prefers_sentences_then_clauses_then_words():
    assert split_prompt("one two three", _words_fit(5)) == ["one two three"]  # fits: unchanged
    text = "a b c. d e f. g h i j k l."
    assert split_prompt(text, _words_fit(6)) == ["a b c. d e f.", "g h i j k l."]  # whole sentences, packed
    text = "a b c, d e f, g h; i j k l m n o p."
    # clauses; the clause that alone is too long goes down to words; then everything is packed in order
    assert split_prompt(text, _words_fit(7)) == ["a b c, d e f,", "g h; i j k l m", "n o p."]
    assert split_prompt("a red cat and a blue dog with a hat", _words_fit(4)) == [
        "a red cat", "and a blue dog", "with a hat"]  # no punctuation: before conjunctions
    assert split_prompt("w1 w2 w3 w4 w5 w6 w7", _words_fit(3)) == ["w1 w2 w3", "w4 w5 w6", "w7"]  # words


@pytest.fixture(scope="module")
def reference(hf_model_dir):
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(hf_model_dir).eval()
    tok = CLIPTokenizer.from_pretrained(hf_model_dir)
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)

    def text(t: str) -> np.ndarray:
        ids = tok([t], truncation=True, max_length=77, return_tensors="pt")
        with torch.no_grad():
            f = model.get_text_features(**ids).pooler_output
        return (f / f.norm(dim=-1, keepdim=True)).numpy()[0]

    def image(img) -> np.ndarray:
        with torch.no_grad():
            f = model.get_image_features(**proc(images=img, return_tensors="pt")).pooler_output
        return (f / f.norm(dim=-1, keepdim=True)).numpy()[0]

    return tok, text, image


def test_pieces_and_scores_match_transformers(hf_model_dir, reference, tmp_path):
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score

    tok, ref_text, ref_image = reference
    n = [len(tok(s)["input_ids"]) - 2 for s in (S1, S2, S3)]
    assert n[0] + n[1] + 2 <= 77 and sum(n) + 2 > 77  # S1 S2 fit together, all three do not
    long_prompt = f"{S1} {S2} {S3}"
    prompts = [long_prompt, "a photo of a cat", long_prompt, S3 * 4]
    images = [random_rgb(i) for i in range(len(prompts))]
    for i, im in enumerate(images):
        im.save(tmp_path / f"{i}.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"image": f"{i}.png", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    out = tmp_path / "out.jsonl"
    result = score(manifest, out, ScoreOptions(model=f"hf:{hf_model_dir}", device="cpu", long_prompt="chunks-mean"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]

    expected_pieces = [f"{S1} {S2}", S3]
    for i in (0, 2):
        img = ref_image(images[i])
        want = np.mean([float(np.dot(img, ref_text(p))) for p in expected_pieces])
        assert rows[i]["chunks_mean_pieces"] == 2 and rows[i]["truncated"] is True
        assert abs(rows[i]["chunks_mean_cosine"] - want) < 1e-4
        assert abs(rows[i]["cosine"] - float(np.dot(img, ref_text(long_prompt)))) < 1e-4  # clip stays truncated
        assert rows[i]["chunks_mean_shift"] == pytest.approx(rows[i]["chunks_mean_cosine"] - rows[i]["cosine"],
                                                             abs=1e-12)
    # a prompt that fits is one piece: exactly the clip cosine
    assert rows[1]["chunks_mean_pieces"] == 1 and rows[1]["chunks_mean_cosine"] == rows[1]["cosine"]
    assert rows[1]["chunks_mean_shift"] == 0.0
    # a prompt of one sentence repeated splits at its clause commas and sentence ends, every piece fitting
    pieces = split_prompt(prompts[3], lambda t: len(tok(t)["input_ids"]) <= 77)
    assert rows[3]["chunks_mean_pieces"] == len(pieces) >= 2
    assert all(len(tok(p)["input_ids"]) <= 77 for p in pieces)

    s = result.summary
    split = [r for r in rows if r["chunks_mean_pieces"] > 1]
    shifts = np.array([r["chunks_mean_cosine"] - r["cosine"] for r in split])
    assert s["chunks_mean"]["rows_split"] == 3
    assert s["chunks_mean"]["mean_abs_shift"] == pytest.approx(np.abs(shifts).mean(), abs=1e-9)
    assert s["chunks_mean"]["max_abs_shift"] == pytest.approx(np.abs(shifts).max(), abs=1e-9)
    assert s["chunks_mean"]["mean_shift"] == pytest.approx(shifts.mean(), abs=1e-9)
    assert s["chunks_mean_cosine"]["n"] == 4
    prov = s["provenance"]["metrics"]["clip_chunks"]
    assert prov["reduce"] == "mean" and "Not the CLIP score" in prov["definition"]
    assert "clip" in s["provenance"]["metrics"]  # the standard CLIP score is still computed


def test_cli_long_prompt_max_and_bad_value(hf_model_dir, reference, tmp_path, capsys):
    from clipgauge.cli import main

    tok, ref_text, ref_image = reference
    random_rgb(7).save(tmp_path / "a.png")
    long_prompt = f"{S1} {S2} {S3}"
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": long_prompt}) + "\n")
    out = tmp_path / "out.jsonl"
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                 "--long-prompt", "chunks-max", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "chunks_max: 1 long prompts split into pieces" in printed and "chunks_max_cosine" in printed
    row = json.loads(out.read_text())
    img = ref_image(random_rgb(7))
    want = max(float(np.dot(img, ref_text(p))) for p in (f"{S1} {S2}", S3))
    assert abs(row["chunks_max_cosine"] - want) < 1e-4 and row["chunks_max_pieces"] == 2
    assert "score" in row and "chunks_mean_cosine" not in row

    capsys.readouterr()
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--long-prompt", "chunks-median"])
    err = capsys.readouterr().err
    assert code == 2 and "chunks-median" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_options_are_one_line():
    from clipgauge.errors import UsageError
    from clipgauge.metrics.clip_chunks import ClipChunks, long_prompt_metric
    from clipgauge.pipeline.plan import ScoreOptions

    with pytest.raises(UsageError, match="unknown reduce 'median'"):
        ClipChunks(reduce="median")
    with pytest.raises(UsageError, match="unknown long-prompt strategy 'split'"):
        ScoreOptions(long_prompt="split").resolved()
    assert long_prompt_metric("truncate") is None
    names = [cls.name for cls, _ in ScoreOptions(long_prompt="chunks-max", model="demo").resolved()]
    assert names[:2] == ["clip", "clip_chunks"] and names.count("clip_chunks") == 1  # next to the CLIP score


def test_tracker_takes_clip_chunks_as_a_metric(hf_model_dir, hf_scorer, reference):
    """Training-time tracking gets the chunked score through ``--metric clip_chunks`` like any metric."""
    from clipgauge.track.metrics import TrackedMetrics

    tok, ref_text, ref_image = reference
    tracked = TrackedMetrics(["clip_chunks:reduce=max"], hf_scorer)
    images = [random_rgb(3), random_rgb(4)]
    prompts = [f"{S1} {S2} {S3}", "a photo of a cat"]
    values = tracked.score(images, prompts, "cpu")
    assert tracked.columns() == ["chunks_max_cosine"]
    want = max(float(np.dot(ref_image(images[0]), ref_text(p))) for p in (f"{S1} {S2}", S3))
    assert abs(values["chunks_max_cosine"][0] - want) < 1e-4
    assert abs(values["chunks_max_cosine"][1] - float(np.dot(ref_image(images[1]), ref_text(prompts[1])))) < 1e-4


def test_fast_token_count_agrees_with_the_encoders_truncated_flag(hf_scorer, openclip_checkpoint):
    """The splitter's ``fits`` (one tokenizer call) says exactly what each encoder's ``tokenize`` flags."""
    from tiny_clip import TINY_OPENCLIP_ARCH

    from clipgauge import Scorer
    from clipgauge.metrics.clip_chunks import fits_function

    open_clip_scorer = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu")
    texts = [" ".join(["red"] * k) for k in (73, 74, 75, 76, 77)] + ["caf\u00e9 &amp; " * 40, S1, f"{S1} {S2} {S3}"]
    for scorer in (hf_scorer, open_clip_scorer):
        fits = fits_function(scorer.encoder)
        assert [fits(t) for t in texts] == [not f for f in scorer.encoder.tokenize(texts).truncated]
        assert [fits(t) for t in texts[:5]] == [True, True, True, False, False]  # 75 tokens + start + end = 77


def test_prompt_prefix_goes_before_the_split(hf_model_dir, reference, tmp_path):
    """``--prompt-prefix`` is put before the prompt, then the whole text is split: only the first piece has it."""
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score

    tok, ref_text, ref_image = reference
    prefix = "A painting in oil on canvas: "
    random_rgb(9).save(tmp_path / "a.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": f"{S1} {S2} {S3}"}) + "\n")
    out = tmp_path / "out.jsonl"
    score(tmp_path / "m.jsonl", out, ScoreOptions(model=f"hf:{hf_model_dir}", device="cpu", prompt_prefix=prefix,
                                                  long_prompt="chunks-mean"))
    row = json.loads(out.read_text())
    assert len(tok(f"{prefix}{S1} {S2}")["input_ids"]) <= 77  # the prefix still fits with the first two sentences
    img = ref_image(random_rgb(9))
    want = np.mean([float(np.dot(img, ref_text(p))) for p in (f"{prefix}{S1} {S2}", S3)])
    assert row["chunks_mean_pieces"] == 2 and abs(row["chunks_mean_cosine"] - want) < 1e-4

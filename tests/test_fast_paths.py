"""The throughput work must never change a score: start-up prefetch, split preprocessing, text batching by
token length, the background weights hash, the console script's fast exit; and bf16 on a CPU without bf16
is announced."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import PROMPTS, jpeg_bytes, random_rgb, reference_hf_cosines

from clipgauge import Scorer
from clipgauge.cli import main
from clipgauge.encoders.base import Tokens
from clipgauge.encoders.clip_pil import ClipPilPlan
from clipgauge.scoring import pipeline
from clipgauge.scoring.text_batches import MAX_PADDING, length_batches
from clipgauge.sinks import read_results


@pytest.fixture
def jpeg_paths(tmp_path):
    paths = []
    for i in range(9):
        p = tmp_path / f"img_{i}.jpg"
        p.write_bytes(jpeg_bytes(random_rgb(i, size=(120 + 7 * i, 90 + 11 * i))))
        paths.append(p)
    return paths


# ------------------------------------------------------------------ preprocessing plan
def test_plan_from_config_file_equals_the_loaded_processors(hf_model_dir, tmp_path):
    from transformers import CLIPImageProcessorPil

    loaded = ClipPilPlan.from_processor(CLIPImageProcessorPil.from_pretrained(hf_model_dir))
    assert loaded is not None
    assert ClipPilPlan.from_config_file(hf_model_dir / "preprocessor_config.json") == loaded
    # the old int form (openai/clip-vit-base-patch32 on the hub) means the same for both readers
    folder = tmp_path / "old"
    shutil.copytree(hf_model_dir, folder)
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg.update(size=200, crop_size=180)
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    old = ClipPilPlan.from_config_file(folder / "preprocessor_config.json")
    assert old == ClipPilPlan.from_processor(CLIPImageProcessorPil.from_pretrained(folder))
    assert (old.short, old.crop_h, old.crop_w) == (200, 180, 180)
    cfg["do_center_crop"] = False
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    assert ClipPilPlan.from_config_file(folder / "preprocessor_config.json") is None  # not the standard recipe
    assert ClipPilPlan.from_config_file(folder / "missing.json") is None
    for broken in ({"size": [1, 2]}, {"image_mean": "x"}, [1, 2], {"crop_size": "abc"}, {"resample": None}):
        (folder / "broken.json").write_text(json.dumps(broken))
        assert ClipPilPlan.from_config_file(folder / "broken.json") is None  # a guess only: never raises


def test_batch_normalisation_table_is_bit_identical_to_the_processor(hf_scorer):
    enc = hf_scorer.encoder
    images = [random_rgb(i, size=(150 + 13 * i, 231 - 9 * i)) for i in range(5)]
    crops = torch.from_numpy(np.stack([enc.crop_plan.crop(im) for im in images]))
    expected = enc.processor(images=images, return_tensors="pt")["pixel_values"]
    assert crops.dtype == torch.uint8
    assert torch.equal(enc.crop_plan.normalize(crops), expected)


# ------------------------------------------------------------------ prefetch during model load
def test_prefetched_images_are_used_and_score_exactly(hf_model_dir, jpeg_paths):
    prompts = [PROMPTS[i % 3] for i in range(len(jpeg_paths))]
    expected = reference_hf_cosines(hf_model_dir, jpeg_paths, prompts)
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=4, prefetch=jpeg_paths)
    assert scorer._prefetch is not None and len(scorer._prefetch.jobs) == len(jpeg_paths)
    for _, fut in scorer._prefetch.jobs:
        fut.result()
    for i, p in enumerate(jpeg_paths):  # other pictures now: only the prefetched pixels give the expected scores
        p.write_bytes(jpeg_bytes(random_rgb(100 + i, size=(64, 64))))  # (a path is checked before it is read)
    result = scorer.score_pairs(jpeg_paths, prompts)
    assert result.error == [None] * len(jpeg_paths)
    np.testing.assert_allclose(result.cosine, expected, atol=1e-5)


def test_prefetch_is_dropped_when_the_loaded_model_preprocesses_differently(hf_model_dir, jpeg_paths, monkeypatch):
    other = ClipPilPlan(short=100, crop_h=100, crop_w=100, resample=3, scale=1 / 255, mean=(0.5,) * 3,
                        std=(0.5,) * 3)
    monkeypatch.setattr("clipgauge.scoring.scorer.early_crop_plan", lambda spec: other)
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", prefetch=jpeg_paths)
    for _, fut in scorer._prefetch.jobs:
        fut.result()
    for p in jpeg_paths:
        p.unlink()
    result = scorer.score_pairs(jpeg_paths, "a cat")
    assert all(e and "file not found" in e for e in result.error)  # decoded afresh, not from the prefetch


def test_prefetch_only_serves_the_same_images_in_the_same_places(hf_model_dir, jpeg_paths):
    expected = Scorer(f"hf:{hf_model_dir}", device="cpu").score(jpeg_paths[::-1], "a cat")
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", prefetch=jpeg_paths)
    # exact: the same rows in the same batches (same batch size, same order), and prefetched pixels are
    # bit-identical to decoded ones; only where the pixels come from may differ
    np.testing.assert_array_equal(scorer.score(jpeg_paths[::-1], "a cat"), expected)


def test_prefetch_memory_is_bounded(monkeypatch, hf_model_dir, jpeg_paths):
    monkeypatch.setattr(pipeline, "PREFETCH_BYTES", 3 * 3 * 224 * 224)
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", prefetch=jpeg_paths)
    assert len(scorer._prefetch.jobs) == 3


def test_console_score_prefetches_and_matches_reference(tmp_path, hf_model_dir, jpeg_paths):
    """A real subprocess of the console script (prefetch, fast exit): every row written, output complete."""
    rows = [{"image": p.name, "prompt": PROMPTS[i % 4]} for i, p in enumerate(jpeg_paths)]
    rows.append({"image": "missing.jpg", "prompt": "x"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    exe = os.path.join(os.path.dirname(sys.executable), "clipgauge")
    proc = subprocess.run([exe, "score", str(tmp_path / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--out",
                           str(tmp_path / "r.jsonl"), "--device", "cpu", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # one row cannot be scored
    assert json.loads(proc.stdout)["rows"] == len(rows)  # the JSON summary was flushed before the fast exit
    assert "1 of 10 rows could not be scored" in proc.stderr
    got = read_results(tmp_path / "r.jsonl")
    assert [r["image"] for r in got] == [r["image"] for r in rows]
    expected = reference_hf_cosines(hf_model_dir, jpeg_paths, [r["prompt"] for r in rows[:-1]])
    np.testing.assert_allclose([r["cosine"] for r in got[:-1]], expected, atol=1e-4)
    assert got[-1]["error"] and got[-1]["cosine"] is None
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text())
    assert summary["rows"] == len(rows)
    assert summary["provenance"]["precision_effect"].startswith("exact")  # what fp32 does to a score, in writing
    assert summary["provenance"]["model"]["attention"] == "sdpa"  # PyTorch's fused attention


# ------------------------------------------------------------------ text batches by token length
def test_length_batches_cover_every_prompt_once_and_cut_padding(hf_scorer):
    texts = [f"word {' '.join(['x'] * (i % 23))}" for i in range(70)] + [PROMPTS[3]]
    tokens = hf_scorer.encoder.tokenize(texts)
    seen = []
    for idx, inputs in length_batches(tokens, max_batch=16):
        lengths = tokens.inputs["attention_mask"][torch.from_numpy(idx)].sum(1)
        assert len(idx) <= 16
        assert inputs["input_ids"].shape == (len(idx), int(lengths.max()))  # cut to its longest prompt
        if len(idx) > 1:  # padding bounded (a one-prompt batch has none)
            assert inputs["input_ids"].numel() <= (1 + MAX_PADDING) * int(lengths.sum()) + int(lengths.max())
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(texts)))


def test_length_batches_without_mask_keep_fixed_inputs():
    ids = torch.arange(10 * 5).reshape(10, 5)
    got = list(length_batches(Tokens(inputs={"text": ids}, truncated=[False] * 10), max_batch=4))
    assert [len(i) for i, _ in got] == [4, 4, 2]
    assert torch.equal(torch.cat([x["text"] for _, x in got]), ids)


def test_text_batching_never_changes_an_embedding(hf_model_dir):
    texts = [p for p in PROMPTS if p] + [f"a {'very ' * k}small cat" for k in range(12)]
    one = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=1).embed_texts(texts)
    many = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=32).embed_texts(texts)
    np.testing.assert_allclose(many, one, atol=1e-6)


# ------------------------------------------------------------------ provenance hash in the background
def test_background_weights_hash_is_the_state_dict_hash(hf_model_dir):
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu")
    scorer.encoder.start_weights_hash()  # what score_manifest does: the hash runs while rows are scored
    assert scorer.encoder._hash_job[0] is not None
    h = hashlib.sha256()
    for name, t in sorted(scorer.encoder.module.state_dict().items()):
        t = t.detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    assert scorer.encoder.weights_sha256() == h.hexdigest()


# ------------------------------------------------------------------ bf16 on a CPU without bf16
@pytest.mark.parametrize("native", [False, True])
def test_bf16_without_native_support_warns_in_one_line(capsys, monkeypatch, hf_model_dir, tmp_path, native):
    monkeypatch.setattr("clipgauge.scoring.device.cpu_has_native_bf16", lambda: native)
    img = tmp_path / "a.png"
    random_rgb(0).save(img)
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "a cat"}) + "\n")
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                 "--precision", "bf16", "--json"])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("clipgauge: warning:")]
    assert len(warned) == (0 if native else 1)
    assert native or "no native bf16" in warned[0]
    assert json.loads(captured.out)["provenance"]["precision_effect"].startswith("autocast bf16 vs fp32: measured")

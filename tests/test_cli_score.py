"""`clipgauge score` end to end: outputs, scales, summaries, exit statuses, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import reference_hf_cosines

from clipgauge.cli import main
from clipgauge.sinks import read_results


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_score_jsonl_end_to_end(capsys, hf_model_dir, image_set):
    folder, rows = image_set
    out = folder / "results.jsonl"
    code, stdout, _ = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}",
                          "--out", out, "--batch-size", 3, "--device", "cpu")
    assert code == 0
    got = read_results(out)
    assert [r["id"] for r in got] == [r["id"] for r in rows]  # input order, every row
    assert all(g["seed"] == r["seed"] and g["cfg"] == r["cfg"] for g, r in zip(got, rows))  # carried through
    assert list(got[0]) == ["id", "image", "prompt", "seed", "cfg", "score", "cosine", "truncated", "language",
                            "language_confidence", "error"]  # language: on by default (tests/test_language.py)
    expected = reference_hf_cosines(hf_model_dir, [folder / r["image"] for r in rows], [r["prompt"] for r in rows])
    np.testing.assert_allclose([g["cosine"] for g in got], expected, atol=1e-4)
    assert [g["score"] for g in got] == [g["cosine"] for g in got]  # exact: the cosine scale is the cosine itself
    assert [g["truncated"] for g in got] == [len(r["prompt"]) > 300 for r in rows]
    summary = json.loads((folder / "results.jsonl.summary.json").read_text())
    assert summary["rows"] == 8 and summary["scored"] == 8 and summary["truncated"] == 1
    assert summary["scales"]["cosine"]["mean"] == pytest.approx(float(np.mean(expected)), abs=1e-5)
    assert summary["scales"]["torchmetrics"]["mean"] == pytest.approx(max(100 * float(np.mean(expected)), 0), abs=1e-3)
    assert "scored" in stdout and "torchmetrics" in stdout and "clip-s" in stdout


def test_summary_provenance(capsys, hf_model_dir, image_set):
    from clipgauge import Scorer, __version__

    folder, _ = image_set
    out = folder / "r.csv"
    code, _, _ = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--out", out,
                     "--prompt-prefix", "a photo of ")
    assert code == 0
    prov = json.loads((folder / "r.csv.summary.json").read_text())["provenance"]
    assert prov["model"]["spec"] == f"hf:{hf_model_dir}"
    assert prov["model"]["weights_sha256"] == Scorer(f"hf:{hf_model_dir}").encoder.weights_sha256()
    assert prov["clipgauge_version"] == __version__
    assert prov["precision"] == "fp32" and prov["device"] == "cpu"
    assert prov["text"]["prompt_prefix"] == "a photo of "
    assert prov["preprocessing"]["resize"]["resample"] == "bicubic"
    assert prov["libraries"]["torch"] and prov["libraries"]["transformers"]
    assert set(prov["scales"]) == {"cosine", "torchmetrics", "clip-s", "angle"}


@pytest.mark.parametrize("scale,factor", [("torchmetrics", 100.0), ("clip-s", 2.5)])
def test_scales_in_output(capsys, hf_model_dir, image_set, scale, factor):
    folder, _ = image_set
    out = folder / "r.parquet"
    code, _, _ = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--out", out,
                     "--scale", scale)
    assert code == 0
    table = pq.read_table(out).to_pylist()
    for r in table:
        expected = factor * r["cosine"] if scale == "torchmetrics" else factor * max(r["cosine"], 0.0)
        assert r["score"] == pytest.approx(expected)


def test_bad_rows_are_written_with_errors_exit_1(capsys, hf_model_dir, image_set):
    folder, rows = image_set
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    data = (folder / "img_0.png").read_bytes()
    (folder / "trunc.png").write_bytes(data[: len(data) // 3])
    extra = [{"id": "e1", "image": "missing.png", "prompt": "x"}, {"id": "e2", "image": "empty.png", "prompt": "x"},
             {"id": "e3", "image": "text.png", "prompt": "x"}, {"id": "e4", "image": "trunc.png", "prompt": "x"},
             {"id": "e5", "image": "img_1.jpg", "prompt": None}, {"id": "e6", "image": "img_1.jpg", "prompt": ""}]
    manifest = folder / "bad.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:2] + extra) + "{broken\n")
    code, _, err = run(capsys, "score", manifest, "--model", f"hf:{hf_model_dir}", "--out", folder / "r.jsonl")
    assert code == 1
    got = read_results(folder / "r.jsonl")
    assert len(got) == 9
    errs = [g["error"] for g in got]
    assert errs[:2] == [None, None] and errs[7] is None  # the empty prompt is valid CLIP input and is scored
    assert "file not found" in errs[2] and "empty file" in errs[3] and "not an image" in errs[4]
    assert "truncated" in errs[5] and "missing 'prompt'" in errs[6] and "invalid JSON" in errs[8]
    assert all(g["score"] is None for g in got if g["error"])
    summary = json.loads((folder / "r.jsonl.summary.json").read_text())
    assert (summary["rows"], summary["scored"], summary["errors"]) == (9, 3, 6)
    assert "6 of 9 rows could not be scored" in err


def test_strict_stops_at_first_bad_row(capsys, hf_model_dir, image_set):
    folder, rows = image_set
    manifest = folder / "bad.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:2] + [{"image": "missing.png", "prompt": "x"}]))
    code, _, err = run(capsys, "score", manifest, "--model", f"hf:{hf_model_dir}", "--out", folder / "r.jsonl",
                       "--strict")
    assert code == 1 and "row 3" in err and "file not found" in err
    assert not (folder / "r.jsonl").exists()


def test_folder_with_sidecars(capsys, hf_model_dir, image_set):
    folder, rows = image_set
    for r in rows:
        (folder / r["image"]).with_suffix(".txt").write_text(r["prompt"])
    code, _, _ = run(capsys, "score", folder, "--model", f"hf:{hf_model_dir}", "--out", folder / "out" / "r.tsv")
    assert code == 0
    got = read_results(folder / "out" / "r.tsv")
    assert [g["image"] for g in got] == sorted(r["image"] for r in rows)
    by_image = {r["image"]: r for r in rows}
    expected = reference_hf_cosines(hf_model_dir, [folder / g["image"] for g in got],
                                    [by_image[g["image"]]["prompt"].strip() for g in got])
    np.testing.assert_allclose([float(g["cosine"]) for g in got], expected, atol=1e-4)


@pytest.mark.parametrize("args,message", [
    (["--model", "open_clip:ViT-B-32"], "bad OpenCLIP spec"),
    (["--model", "not a model!"], "unknown model"),
    (["--scale", "x100"], "x100"),
    (["--out", "r.xlsx"], "unsupported output format"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
    (["--batch-size", "0"], "batch-size"),
    (["--bogus"], "No such option"),
])
def test_usage_errors_exit_2_with_one_line(capsys, hf_model_dir, image_set, args, message):
    folder, _ = image_set
    argv = ["score", folder / "manifest.jsonl"] + args
    if "--model" not in args:
        argv += ["--model", f"hf:{hf_model_dir}"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_manifest_errors_exit_2(capsys, hf_model_dir, tmp_path):
    code, _, err = run(capsys, "score", tmp_path / "nope.jsonl", "--model", f"hf:{hf_model_dir}")
    assert code == 2 and "manifest not found" in err
    (tmp_path / "m.csv").write_text("file,prompt\na.png,x\n")
    code, _, err = run(capsys, "score", tmp_path / "m.csv", "--model", f"hf:{hf_model_dir}")
    assert code == 2 and "no 'image' column" in err and len(err.strip().splitlines()) == 1


def test_uncached_hub_model_is_one_clear_line(tmp_path):
    """A real subprocess: the console script, offline, for a hub id that is not cached."""
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "x"}) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    exe = os.path.join(os.path.dirname(sys.executable), "clipgauge")
    proc = subprocess.run([exe, "score", str(tmp_path / "m.jsonl"), "--model", "openai/clip-vit-base-patch32"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "not in the local Hugging Face cache" in lines[0] and "hf:/path/to/folder" in lines[0]


def test_help_names_default_model(capsys):
    code, out, _ = run(capsys, "score", "--help")
    assert code == 0 and "openai/clip-vit-large-patch14" in out

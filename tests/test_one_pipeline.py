"""One scoring pipeline for every output and engine (issue #11): the same rows, errors and scores from a results
file (JSONL, Parquet), a results folder, the local engine and Ray; reference scores and saved embeddings
everywhere; a metric defined outside the package works through every path, the summary and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import assert_rows_close, jpeg_bytes, random_rgb, sigkill_when

from clipgauge.cli import main
from clipgauge.decode import load_image
from clipgauge.metrics import Column, Metric, MetricOutput, Need, register_metric, unregister_metric
from clipgauge.sinks import read_results

EMBEDDINGS = {"image_embedding": 1e-3, "text_embedding": 1e-3}  # float16 storage


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def mixed_manifest(tmp_path) -> Path:
    """Good rows with reference images and captions, plus every kind of broken row."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(6):
        (folder / f"g{i}.jpg").write_bytes(jpeg_bytes(random_rgb(i, size=(80 + 8 * i, 64))))
    (folder / "not_an_image.png").write_bytes(b"nope")
    prompts = ["a red circle", "a blue square on grass", "two cats", "a red circle", "a tree", "a boat"]
    lines = []
    for i in range(6):
        lines.append(json.dumps({"id": i, "image": f"g{i}.jpg", "prompt": prompts[i], "ref": f"g{(i + 1) % 6}.jpg",
                                 "refs": [prompts[(i + 2) % 6], "a photo"]}))
    lines += [
        json.dumps({"id": 6, "image": "missing.jpg", "prompt": "gone", "ref": "g0.jpg", "refs": ["x"]}),
        json.dumps({"id": 7, "image": "not_an_image.png", "prompt": "broken", "ref": "g0.jpg", "refs": ["x"]}),
        json.dumps({"id": 8, "image": "g1.jpg", "prompt": None, "ref": "g0.jpg", "refs": ["x"]}),
        "{not json",
        json.dumps({"id": 10, "image": "g2.jpg", "prompt": "a bad reference", "ref": "nowhere.jpg", "refs": ["x"]}),
        json.dumps({"id": 11, "image": "g3.jpg", "prompt": "no references", "ref": "", "refs": []}),
    ]
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "m.jsonl"


def _score(capsys, manifest, model_dir, out, *extra):
    code, stdout, err = run(capsys, "score", manifest, "--model", f"hf:{model_dir}", "--out", out, "--device", "cpu",
                            "--reference-image", "ref", "--reference-text", "refs", "--save-embeddings",
                            "--batch-size", 4, *extra)
    assert code == 1, err  # some rows are broken on purpose
    return stdout, err


def _rows(path: Path) -> list[dict]:
    rows = read_results(path) if path.suffix else pq.read_table(path).to_pylist()
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in ("row_id", "row_source")}
        for k in ("image_embedding", "text_embedding"):
            if isinstance(r.get(k), str):
                r[k] = json.loads(r[k])
        out.append(r)
    return out


def test_every_output_and_engine_gives_the_same_rows(capsys, hf_model_dir, mixed_manifest, tmp_path):
    pytest.importorskip("ray")
    outs = {"jsonl": tmp_path / "r.jsonl", "parquet": tmp_path / "r.parquet", "folder": tmp_path / "dir"}
    for out in outs.values():
        _score(capsys, mixed_manifest, hf_model_dir, out, "--shard-size", 5)
    _score(capsys, mixed_manifest, hf_model_dir, tmp_path / "ray", "--engine", "ray", "--shard-size", 5)
    _score(capsys, mixed_manifest, hf_model_dir, tmp_path / "ray.jsonl", "--engine", "ray", "--shard-size", 5)
    reference = _rows(outs["jsonl"])
    assert len(reference) == 12
    errors = [r["error"] for r in reference]
    assert errors[:6] == [None] * 6
    assert "file not found" in errors[6] and errors[7] and "prompt" in errors[8] and "invalid JSON" in errors[9]
    # metrics in order: clip_i's reason (no reference image) comes before refclip_s's (no captions)
    assert errors[10].startswith("reference image:") and errors[11] == "missing 'ref' value"
    # a failing reference keeps the row's own score; a broken image has none
    assert reference[10]["cosine"] is not None and reference[10]["clip_i"] is None
    assert reference[6]["cosine"] is None and reference[6]["clip_i"] is None
    assert all(r["image_embedding"] is not None for r in reference[:6])
    for name, path in [*outs.items(), ("ray", tmp_path / "ray"), ("ray.jsonl", tmp_path / "ray.jsonl")]:
        assert_rows_close(_rows(path), reference, atol_for=EMBEDDINGS), name
    # the staging folders of the single files are gone, and each summary counts the same
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    s_file = json.loads((tmp_path / "r.jsonl.summary.json").read_text())
    s_dir = json.loads((tmp_path / "dir" / "_summary.json").read_text())
    for key in ("rows", "scored", "errors", "truncated"):
        assert s_file[key] == s_dir[key]
    assert s_file["metrics"] == ["clip", "clip_i", "refclip_s", "language"]  # language: added by default
    assert abs(s_file["refclip_s"]["mean"] - s_dir["refclip_s"]["mean"]) < 1e-6


def test_strict_stops_at_the_first_broken_row_for_every_output(capsys, hf_model_dir, mixed_manifest, tmp_path):
    for out in (tmp_path / "r.jsonl", tmp_path / "dir"):
        code, _, err = run(capsys, "score", mixed_manifest, "--model", f"hf:{hf_model_dir}", "--out", out,
                           "--device", "cpu", "--strict")
        assert code == 1 and "stopped (--strict) at row 7: file not found" in err, err
    assert not (tmp_path / "r.jsonl").exists()


# --------------------------------------------------------------------------- a metric from outside the package

class MeanPixel(Metric):
    """The mean of the decoded image's RGB values, in [0, 255]: needs the decoded image, nothing else."""

    name = "mean_pixel"
    summary = "mean RGB value of the decoded image"
    options = {"scale": "unused: a metric may ignore run defaults"}

    def needs(self):
        return [Need("image")]

    def columns(self):
        return [Column("mean_pixel", range=(0.0, 255.0), unit="8-bit value", higher_is_better=None)]

    def compute(self, batch):
        images = batch.values[Need("image")]
        values = np.array([np.nan if im is None else float(np.asarray(im, dtype=np.float64).mean())
                           for im in images])
        return MetricOutput({"mean_pixel": values})


@pytest.fixture()
def mean_pixel():
    register_metric(MeanPixel)
    yield MeanPixel
    unregister_metric("mean_pixel")


def test_a_metric_registered_outside_the_package_works_everywhere(capsys, hf_model_dir, image_set, tmp_path,
                                                                  mean_pixel):
    pytest.importorskip("ray")
    folder, rows = image_set
    manifest = folder / "manifest.jsonl"
    expected = [float(np.asarray(load_image(folder / r["image"]), dtype=np.float64).mean()) for r in rows]
    common = ["--model", f"hf:{hf_model_dir}", "--device", "cpu", "--metric", "clip", "--metric", "mean_pixel"]
    outs = {"file": tmp_path / "r.jsonl", "folder": tmp_path / "dir", "ray": tmp_path / "ray"}
    for name, out in outs.items():
        extra = ["--engine", "ray"] if name == "ray" else []
        code, stdout, err = run(capsys, "score", manifest, "--out", out, *common, *extra)
        assert code == 0, err
        assert "mean_pixel" in stdout  # the printed summary table
        got = [r["mean_pixel"] for r in _rows(out)]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text())
    assert summary["mean_pixel"]["n"] == len(rows)
    assert abs(summary["mean_pixel"]["mean"] - np.mean(expected)) < 1e-9
    declared = {c["name"]: c for c in summary["columns"]}
    assert declared["mean_pixel"]["range"] == [0.0, 255.0] and declared["mean_pixel"]["metric"] == "mean_pixel"
    assert summary["provenance"]["metrics"]["mean_pixel"]["columns"][0]["unit"] == "8-bit value"
    assert "correlations" not in summary  # mean_pixel declares no better direction: it is not a score
    pytest.importorskip("jinja2")
    code, _, err = run(capsys, "report", tmp_path / "r.jsonl", "--out", tmp_path / "report.html")
    assert code == 0, err
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "mean_pixel" in html and f"{np.mean(expected):.4f}" in html
    # its histogram, and the image grid sorts by it
    assert 'alt="histogram of mean_pixel for r"' in html and "mean_pixel, highest first" in html
    assert html.count('data-m0="') == len(rows)


def test_metric_options_and_listing(capsys, hf_model_dir, image_set, tmp_path):
    folder, _ = image_set
    manifest = folder / "manifest.jsonl"
    base = ["score", manifest, "--device", "cpu"]
    code, _, err = run(capsys, *base, "--metric", "nope")
    assert code == 2 and "unknown metric 'nope'" in err and "clip" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, *base, "--metric", f"clip:model=hf:{hf_model_dir},colour=red")
    assert code == 2 and "has no option colour" in err
    code, _, err = run(capsys, *base, "--metric", "clip_i")
    assert code == 2 and "needs column=" in err
    # clip:model= works without --model, and clip:scale= sets the score column's scale
    code, _, err = run(capsys, *base, "--metric", f"clip:model=hf:{hf_model_dir},scale=torchmetrics",
                       "--out", tmp_path / "r.jsonl")
    assert code == 0, err
    rows = read_results(tmp_path / "r.jsonl")
    assert all(abs(r["score"] - 100 * r["cosine"]) < 1e-9 for r in rows)
    code, out, _ = run(capsys, "metrics", "--json")
    listing = json.loads(out)
    names = {m["name"]: m for m in listing["metrics"]}
    assert {"clip", "clip_i", "refclip_s"} <= set(names)
    assert names["clip"]["columns"] == ["score", "cosine", "truncated"] and "model" in names["clip"]["options"]
    code, out, _ = run(capsys, "metrics")
    assert code == 0 and "refclip_s" in out


# --------------------------------------------------------------------------- resumable single files

def _killed_then_resumed(tmp_path: Path, model_dir: Path, out: Path, *again: str):
    import os
    import subprocess
    import sys

    from clipgauge.sinks.file import staging_folder
    from clipgauge.sinks.sharded import list_parts

    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = []
    for i in range(48):
        (folder / f"{i:02d}.jpg").write_bytes(jpeg_bytes(random_rgb(i, size=(256, 256))))
        lines.append(json.dumps({"image": f"{i:02d}.jpg", "prompt": f"picture number {i % 7}", "n": i}))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    exe = os.path.join(os.path.dirname(sys.executable), "clipgauge")
    cmd = [exe, "score", str(folder / "m.jsonl"), "--model", f"hf:{model_dir}", "--out", str(out), "--shard-size", "4",
           "--batch-size", "1", "--workers", "1", "--device", "cpu"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    staging = staging_folder(out)
    sigkill_when(proc, lambda: staging.is_dir() and bool(list_parts(staging)))
    done = len(list_parts(staging))
    assert 1 <= done < 12 and not out.exists(), "the run was not killed mid-way"
    result = subprocess.run(cmd + list(again), capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not staging.exists()
    clean = tmp_path / ("clean" + out.suffix)
    assert subprocess.run(cmd[:6] + [str(clean)] + cmd[7:], env=env, timeout=300).returncode == 0
    return done, result.stdout, read_results(out), read_results(clean)


@pytest.mark.parametrize("suffix", [".jsonl", pytest.param(".parquet", marks=pytest.mark.slow)])
def test_a_killed_single_file_run_resumes(hf_model_dir, tmp_path, suffix):
    """A real SIGKILL of `clipgauge score --out r.jsonl`; the same command finishes it: every row once, in input
    order, with the scores of a clean run."""
    done, stdout, rows, clean = _killed_then_resumed(tmp_path, hf_model_dir, tmp_path / f"r{suffix}")
    assert f"resumed: {12 - done} new parts" in stdout
    assert [r["n"] for r in rows] == list(range(48))
    assert_rows_close(rows, clean)


@pytest.mark.slow
def test_no_resume_starts_a_killed_single_file_run_over(hf_model_dir, tmp_path):
    done, stdout, rows, clean = _killed_then_resumed(tmp_path, hf_model_dir, tmp_path / "r.jsonl", "--no-resume")
    assert "resumed" not in stdout
    assert_rows_close(rows, clean)


def test_three_metrics_decode_each_image_once(capsys, hf_model_dir, image_set, tmp_path, monkeypatch, mean_pixel):
    """clip on one model, clip_iqa on another and a metric that reads pixels: every image file is decoded once."""
    from tiny_clip import save_tiny_hf_clip

    import clipgauge.decode as decode

    other = save_tiny_hf_clip(tmp_path / "other", seed=1)
    folder, rows = image_set
    decoded: list[int] = []
    real = decode._load_bytes

    def counting(data, *args, **kwargs):
        decoded.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(decode, "_load_bytes", counting)
    code, _, err = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                       "--metric", "clip", "--metric", f"clip_iqa:model=hf:{other}", "--metric", "mean_pixel",
                       "--out", tmp_path / "r.jsonl")
    assert code == 0, err
    assert len(decoded) == len(rows)
    got = read_results(tmp_path / "r.jsonl")
    assert all(r["clip_iqa"] is not None and r["mean_pixel"] is not None and r["cosine"] is not None for r in got)


def test_a_run_without_a_clip_model_still_has_provenance(capsys, image_set, tmp_path, mean_pixel):
    folder, rows = image_set
    code, _, err = run(capsys, "score", folder / "manifest.jsonl", "--metric", "mean_pixel", "--out",
                       tmp_path / "r.jsonl", "--device", "cpu")
    assert code == 0, err
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text())
    prov = summary["provenance"]
    assert prov["clipgauge_version"] and prov["libraries"]["numpy"] and "mean_pixel" in prov["metrics"]
    assert summary["rows"] == len(rows) and "scales" not in summary  # no clip metric, no clip statistics


def test_metrics_from_the_entry_point_group_are_found(monkeypatch):
    """An installed package's metric (entry-point group clipgauge.metrics) is listed and built by name."""
    from importlib import metadata

    import clipgauge.metrics.registry as registry

    class Plugin(MeanPixel):
        name = "plugin_pixel"

    ep = metadata.EntryPoint(name="plugin_pixel", value="my_plugin:Plugin", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(metadata.EntryPoint, "load", lambda self: Plugin)
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_registered", {})
    assert "plugin_pixel" in registry.available_metrics()
    assert registry.parse_metric("plugin_pixel").build().columns()[0].name == "mean_pixel"

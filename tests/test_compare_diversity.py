"""``clipgauge compare`` shows the runs' per-prompt diversity beside the CLIP score, and with ``--distance`` the
distribution distance between their stored embeddings (CMMD and FD by default)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes, random_rgb

from clipgauge.cli import main
from clipgauge.sinks import read_results

PROMPTS = ["a red cube", "two cats", "a blue star"]


def make_run(folder: Path, offset: int, *, save_embeddings: bool = True, seeds: int = 3) -> Path:
    """A run of 3 prompts x *seeds* images, scored with the demo model, clip and diversity."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for p, prompt in enumerate(PROMPTS):
        for s in range(seeds):
            name = f"{p}_{s}.jpg"
            (folder / name).write_bytes(jpeg_bytes(random_rgb(offset + 10 * p + s, size=(96, 96))))
            rows.append({"prompt_id": f"p{p}", "seed": s, "prompt": prompt, "image": name})
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    out = folder / "results.parquet"
    args = ["score", str(folder / "manifest.jsonl"), "--model", "demo", "--device", "cpu", "--metric", "clip",
            "--metric", "diversity", "--out", str(out)]
    assert main(args + (["--save-embeddings"] if save_embeddings else [])) == 0
    return out


def group_means(results: Path) -> list[float]:
    """The recipe: one diversity value per prompt (the value its rows carry), in prompt order."""
    rows = read_results(results)
    return [next(r["diversity"] for r in rows if r["prompt"] == p) for p in PROMPTS]


def test_compare_shows_diversity_beside_the_clip_score(tmp_path, capsys):
    a, b = make_run(tmp_path / "a", 0), make_run(tmp_path / "b", 500)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--key", "prompt_id,seed", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = list(doc["files"])
    for name, path in zip(names, (a, b)):
        want = group_means(path)
        got = doc["diversity"][name]
        assert got["groups"] == 3
        assert got["mean"] == pytest.approx(np.mean(want), abs=1e-9)
        assert got["ci_low"] <= got["mean"] <= got["ci_high"]
    assert main(["compare", str(a), str(b), "--key", "prompt_id,seed"]) == 0
    out = capsys.readouterr().out
    assert "per-prompt diversity" in out and f"{np.mean(group_means(a)):.4f}" in out


def test_compare_distance_needs_saved_embeddings(tmp_path, capsys):
    a, b = make_run(tmp_path / "a", 0), make_run(tmp_path / "b", 500, save_embeddings=False)
    capsys.readouterr()
    code = main(["compare", str(a), str(b), "--key", "prompt_id,seed", "--distance"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--save-embeddings" in err and "Traceback" not in err


def test_compare_distance_between_runs(tmp_path, capsys):
    pytest.importorskip("clipgauge.distribution.run")
    from test_report_distribution import fd_recipe, mmd_recipe, stored_embeddings

    a, b = make_run(tmp_path / "a", 0), make_run(tmp_path / "b", 500)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--key", "prompt_id,seed", "--distance", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (d,) = doc["distances"]
    x, y = stored_embeddings(a), stored_embeddings(b)
    assert (d["a"], d["b"]) == tuple(doc["files"]) and d["n_generated"] == len(x) and d["n_reference"] == len(y)
    want_cmmd, want_fd = mmd_recipe(x, y), fd_recipe(x, y)
    assert d["cmmd"] == pytest.approx(want_cmmd, rel=1e-3, abs=1e-4)
    assert d["fd"] == pytest.approx(want_fd, rel=1e-3, abs=1e-4)
    assert len(d["cmmd_ci"]) == 2 and len(d["fd_ci"]) == 2
    assert main(["compare", str(a), str(b), "--key", "prompt_id,seed", "--distance"]) == 0
    out = capsys.readouterr().out
    assert "distribution distance" in out and f"{d['cmmd']:.4f}" in out

"""Sweeps: :func:`clipgauge.stats.sweep.sweep_table`, its CSV/PNG files and ``clipgauge sweep``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import score_rows_with_demo
from PIL import Image

from clipgauge.cli import main
from clipgauge.demo import scenes
from clipgauge.errors import UsageError
from clipgauge.sinks import write_results
from clipgauge.sinks.sweep_files import plot_sweep, write_sweep_csv
from clipgauge.stats.summary import describe
from clipgauge.stats.sweep import sweep_table

COLUMNS = ["prompt_id", "seed", "cfg", "image", "prompt", "score", "cosine", "truncated", "error"]


def rec(pid, seed, cfg, cos):
    return {"prompt_id": pid, "seed": seed, "cfg": cfg, "image": f"{pid}_{cfg}_{seed}.png", "prompt": "p",
            "score": cos, "cosine": cos, "truncated": False, "error": None if cos is not None else "file not found: x"}


def synthetic(n_prompts=40, seeds=2, peak=7.0, seed=0) -> list[dict]:
    """Prompt adherence that rises to a maximum at cfg = *peak* and falls after it (over-saturation)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.30, 0.04, n_prompts)
    rows = []
    for cfg in (1, 3, 5, 7, 9, 11, 13):
        for p in range(n_prompts):
            for s in range(seeds):
                cos = difficulty[p] - 0.0008 * (cfg - peak) ** 2 + rng.normal(0, 0.01)
                rows.append(rec(f"p{p}", s, cfg, cos))
    return rows


def test_per_value_statistics_by_hand() -> None:
    rows = [rec("a", 0, 1, 0.1), rec("b", 0, 1, 0.2), rec("a", 0, "3", 0.4), rec("b", 0, 3.0, 0.3),
            rec("c", 0, 3, 0.35), rec("a", 1, 3, None), rec("a", 0, "high", 0.9), rec("a", 0, None, 0.9)]
    s = sweep_table(rows, "cfg")
    assert [r.value for r in s.rows] == [1.0, 3.0]
    assert [r.rows for r in s.rows] == [2, 3]
    ref = describe(np.array([0.4, 0.3, 0.35]))
    r3 = s.rows[1]
    assert r3.mean == pytest.approx(0.35) and r3.ci_low == pytest.approx(ref["ci_low"])
    assert r3.std == pytest.approx(np.std([0.4, 0.3, 0.35], ddof=1))
    assert s.peak_value == 3.0 and s.peak_mean == pytest.approx(0.35)
    assert (s.unscored, s.no_value, s.input_rows) == (1, 2, 8)
    assert s.to_dict()["peak_value"] == 3 and s.table()[1]["is_peak"]


def test_group_by_averages_within_groups_first() -> None:
    # at cfg 1 prompt a has three images (0.1, 0.2, 0.3) and prompt b one (0.6): per image the mean is 0.3,
    # per prompt it is mean(0.2, 0.6) = 0.4 with n = 2
    rows = [rec("a", i, 1, c) for i, c in enumerate((0.1, 0.2, 0.3))] + [rec("b", 0, 1, 0.6)]
    per_image = sweep_table(rows, "cfg")
    per_prompt = sweep_table(rows, "cfg", group_by=("prompt_id",))
    assert (per_image.rows[0].n, per_image.rows[0].mean) == (4, pytest.approx(0.3))
    assert (per_prompt.rows[0].n, per_prompt.rows[0].rows, per_prompt.rows[0].mean) == (2, 4, pytest.approx(0.4))


def test_synthetic_degradation_peaks_where_it_should() -> None:
    rows = synthetic(peak=7.0)
    s = sweep_table(rows, "cfg", group_by=("prompt_id",))
    assert s.peak_value == 7.0
    assert all(r.n == 40 and r.rows == 80 for r in s.rows)
    # independently: per-prompt means per cfg, the peak's CI from describe(), the smallest cfg within it
    cfgs = sorted({r["cfg"] for r in rows})
    per_prompt = {c: [np.mean([r["cosine"] for r in rows if r["cfg"] == c and r["prompt_id"] == f"p{p}"])
                      for p in range(40)] for c in cfgs}
    means = {c: np.mean(v) for c, v in per_prompt.items()}
    assert [r.mean for r in s.rows] == pytest.approx([means[c] for c in cfgs])
    peak_low = describe(np.array(per_prompt[7]))["ci_low"]
    assert s.peak_ci_low == pytest.approx(peak_low)
    assert s.plateau_value == min(c for c in cfgs if means[c] >= peak_low) == 5.0
    for r in s.table():
        assert r["within_peak_ci"] == (r["mean"] >= s.peak_ci_low)
    shifted = sweep_table(synthetic(peak=11.0, seed=1), "cfg", group_by=("prompt_id",))
    assert shifted.peak_value == 11.0


def test_errors() -> None:
    with pytest.raises(UsageError, match="no 'steps' column"):
        sweep_table(synthetic(n_prompts=2), "steps")
    with pytest.raises(UsageError, match="no numeric values"):
        sweep_table([rec("a", 0, "low", 0.2)], "cfg")


def test_csv_and_png_files(tmp_path) -> None:
    s = sweep_table(synthetic(n_prompts=10), "cfg")
    path = write_sweep_csv(s, tmp_path / "t.csv")
    with open(path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["cfg"]) for r in table] == [1, 3, 5, 7, 9, 11, 13]
    assert [float(r["mean"]) for r in table] == pytest.approx([r.mean for r in s.rows])
    assert [r["is_peak"] for r in table].count("True") == 1
    png = plot_sweep(s, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        assert im.size == (768, 480)


def test_cli(tmp_path, capsys) -> None:
    src = tmp_path / "results.csv"  # CSV: every value comes back as text
    write_results(src, synthetic(n_prompts=12), COLUMNS)
    out_dir = tmp_path / "sweep"
    assert main(["sweep", str(src), "--param", "cfg", "--group-by", "prompt_id", "--out-dir", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert "peak: cfg = 7" in text and "sweep_cfg.png" in text
    assert (out_dir / "sweep_cfg.csv").is_file() and (out_dir / "sweep_cfg.png").is_file()
    assert main(["sweep", str(src), "--param", "cfg", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["peak_value"] == 7 and [r["value"] for r in doc["rows"]] == [1, 3, 5, 7, 9, 11, 13]
    assert main(["sweep", str(src), "--param", "nope"]) == 2
    assert main(["sweep", str(src)]) == 2
    assert "Traceback" not in capsys.readouterr().err




def test_sweep_over_a_synthetic_adherence_curve_peaks_where_it_should(tmp_path, capsys) -> None:
    """A fake generator whose prompt adherence peaks at cfg = 6: of the 5 images it makes per prompt at a
    given cfg, ADHERENT[cfg] follow the prompt and the rest are deliberately mismatched renders (the same
    renders at every cfg, so only adherence changes). Scored by the demo CLIP, the sweep peaks at 6."""
    adherent = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 4, 8: 2, 9: 1}
    prompts = ["a red circle", "two yellow stars", "a blue square", "a green triangle", "a purple star",
               "an orange circle", "a white square on a black background", "two black triangles"]
    rng = np.random.default_rng(0)
    rows = []
    for p, prompt in enumerate(prompts):
        for k in range(5):
            for follow in (True, False):
                image, _ = scenes.render_prompt(prompt, follow=follow, rng=rng, size=64)
                image.save(tmp_path / f"p{p}_k{k}_{'follow' if follow else 'mismatch'}.png")
        for cfg, n_follow in adherent.items():
            for k in range(5):
                kind = "follow" if k < n_follow else "mismatch"
                rows.append({"prompt_id": f"p{p}", "seed": k, "cfg": cfg, "image": f"p{p}_k{k}_{kind}.png",
                             "prompt": prompt})
    results = score_rows_with_demo(tmp_path, rows)
    capsys.readouterr()
    assert main(["sweep", str(results), "--param", "cfg", "--group-by", "prompt_id", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["peak_value"] == 6
    means = [r["mean"] for r in doc["rows"]]
    assert means[:6] == sorted(means[:6]) and means[5:] == sorted(means[5:], reverse=True)
    assert means[0] < means[5] - 0.1  # all mismatched vs all following: a clear gap in cosine

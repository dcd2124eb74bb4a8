"""`clipgauge demo`: offline, with the shipped demo CLIP and its aesthetic head; outputs exist and the scores mean
something."""

from __future__ import annotations

import json
import time

from clipgauge.cli import main
from clipgauge.sinks import read_results


def test_demo_writes_every_output_and_separates_matches(tmp_path, capsys):
    start = time.perf_counter()
    code = main(["demo", "--out", str(tmp_path / "demo"), "--per-prompt", "4"])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 0
    folder = tmp_path / "demo"
    rows = read_results(folder / "results.jsonl")
    assert len(rows) == 32 and all(r["error"] is None for r in rows)
    summary = json.loads((folder / "results.jsonl.summary.json").read_text())
    assert summary["provenance"]["model"]["spec"] == "demo"
    assert (folder / "report.html").stat().st_size > 10_000
    follow = [r["cosine"] for r in rows if r["follows_prompt"]]
    other = [r["cosine"] for r in rows if not r["follows_prompt"]]
    assert min(follow) > sum(other) / len(other)  # every matching image beats the average mismatch
    for pid in range(8):  # best-of-4 picks an image that follows its prompt, for every prompt
        group = [r for r in rows if r["prompt_id"] == pid]
        assert max(group, key=lambda r: r["cosine"])["follows_prompt"]
    assert "best-of-4" in out
    # the second metric: the demo aesthetic head on the same embeddings (its own checks: test_demo_aesthetic.py)
    aesthetic = [r["aesthetic"] for r in rows]
    assert all(isinstance(a, float) for a in aesthetic)
    assert 5.0 < sum(aesthetic) / len(aesthetic) < 9.0  # clean renders: about 7 (degraded ones: about 3)
    assert summary["aesthetic"]["version"] == "v2-relu" and summary["aesthetic"]["n"] == 32
    assert summary["provenance"]["metrics"]["aesthetic"]["head"]["source"] == "demo"
    assert "demo aesthetic" in out
    assert elapsed < 60


def test_run_demo_reports_aesthetic_means(tmp_path):
    from clipgauge.demo.run import run_demo

    res = run_demo(tmp_path / "d", per_prompt=2, seed=3, report=False)
    rows = read_results(res.results)
    assert res.aesthetic_mean == sum(r["aesthetic"] for r in rows) / len(rows)
    follow = [r["aesthetic"] for r in rows if r["follows_prompt"]]
    assert res.aesthetic_follow_mean == sum(follow) / len(follow)
    assert abs(res.summary["aesthetic"]["mean"] - res.aesthetic_mean) < 1e-9

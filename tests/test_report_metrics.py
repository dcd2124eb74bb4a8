"""`clipgauge report` on runs whose only metric is not the clip score (aesthetic alone), and the Spearman
correlation between metrics in the printed summary of `clipgauge score` and in the report.

Real runs of the shipped demo CLIP and its aesthetic head; expected numbers are computed here from the rows
the runs wrote (numpy, scipy), never from the report's own code.
"""

from __future__ import annotations

import contextlib
import html as html_lib
import io
import json
import re

import numpy as np
import pytest
from scipy.stats import spearmanr

from clipgauge.cli import main
from clipgauge.demo.scenes import render_prompt
from clipgauge.sinks import read_results

PROMPTS = [("a red circle", "simple"), ("two yellow stars", "counting"), ("a blue square", "simple"),
           ("two green triangles", "counting"), ("a purple star", "colour")]
AESTHETIC = "aesthetic:head=demo,model=demo"


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """An aesthetic-only run and a clip + aesthetic run of one manifest: 10 renders in 3 categories and a row
    whose image is missing (kept, with its error)."""
    root = tmp_path_factory.mktemp("report_metrics")
    rows = []
    for i, (prompt, cat) in enumerate(PROMPTS):
        for seed in (0, 1):
            name = f"p{i}_s{seed}.png"
            render_prompt(prompt, follow=seed == 0, rng=10 * i + seed, size=64)[0].save(root / name)
            rows.append({"prompt_id": f"p{i}", "seed": seed, "prompt": prompt, "image": name, "category": cat})
    rows.append({"prompt_id": "p9", "seed": 0, "prompt": "a red circle", "image": "nope.png", "category": "simple"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    printed = {}
    for name, metrics in (("aes", [AESTHETIC]), ("both", ["clip", AESTHETIC])):
        argv = ["score", manifest, "--model", "demo", "--device", "cpu", "--out", root / f"{name}.jsonl"]
        for m in metrics:
            argv += ["--metric", m]
        buf = io.StringIO()  # capsys is per test; this fixture is per module
        with contextlib.redirect_stdout(buf):
            assert main([str(a) for a in argv]) == 1  # 1: some rows were not scored (the missing image)
        printed[name] = buf.getvalue()
    return {"root": root, "aes": root / "aes.jsonl", "both": root / "both.jsonl", "printed": printed}


def _section(page: str, ident: str) -> str:
    start = page.index(f'id="{ident}"')
    end = page.find("</section>", start)
    return page[start:end]


def test_report_of_an_aesthetic_only_run(runs, tmp_path, capsys):
    records = read_results(runs["aes"])
    assert "cosine" not in records[0] and records[-1]["error"]  # no clip score; the broken row is kept
    page_path, info_path = tmp_path / "page.html", tmp_path / "info.json"
    code, _, err = _run(capsys, "report", runs["aes"], "--out", page_path, "--json", info_path)
    assert code == 0, err
    info = json.loads(info_path.read_text())
    assert {"summary", "metrics", "errors", "images"} <= set(info["sections"])
    assert "histograms" not in info["sections"] and "categories" not in info["sections"]  # the clip score's own
    (run,) = info["runs"]
    assert (run["rows"], run["scored"], run["errors"]) == (11, 10, 1)
    page = html_lib.unescape(page_path.read_text(encoding="utf-8"))

    # statistics and histogram of the declared column
    metrics = _section(page, "metrics")
    ok = [r for r in records if not r.get("error")]
    values = np.array([r["aesthetic"] for r in ok])
    assert f"{values.mean():.4f}" in metrics and f"{np.median(values):.4f}" in metrics
    assert 'alt="histogram of aesthetic for aes"' in metrics

    # per-category table of the aesthetic column: mean (n) per category, as numpy computes it from the rows
    table = metrics[metrics.index('id="metric-categories-table"'):]
    for cat in ("simple", "counting", "colour"):
        x = np.array([r["aesthetic"] for r in ok if r["category"] == cat])
        row = re.search(rf'<tr><td class="text">{cat}</td><td[^>]*>([^<]*)</td></tr>', table)
        assert row, cat
        assert row.group(1).startswith(f"{x.mean():.4f} [") and row.group(1).endswith(f"(n={x.size})")

    # the grid: ordered by aesthetic, worst (lowest) first, every scored row once; the score line names it
    grid = _section(page, "images")
    shown = [int(m) for m in re.findall(r'<figure class="card"[^>]* data-row="(\d+)"', grid)]
    order = sorted(range(len(records)), key=lambda i: (records[i]["aesthetic"] if not records[i].get("error")
                                                       else np.inf, i))
    assert shown == [i + 1 for i in order[:10]]
    worst = min(values)
    assert f'<span class="score">aesthetic {worst:.4f}</span>' in grid
    assert "Sorted by <b>aesthetic</b>" in grid


def test_runs_without_a_clip_score_compare_on_aesthetic(runs, tmp_path, capsys):
    """Without a clip score the comparison is on the first shared metric: its means are the runs' means."""
    info_path = tmp_path / "info.json"
    code, _, err = _run(capsys, "report", runs["aes"], runs["both"], "--out", tmp_path / "p.html",
                        "--json", info_path)
    assert code == 0, err
    info = json.loads(info_path.read_text())
    # one run has a clip score: the page keeps the clip sections; the runs compare on the metric they share
    assert "histograms" in info["sections"] and info["comparison"]["column"] == "aesthetic"
    code, _, err = _run(capsys, "report", runs["aes"], runs["aes"], "--out", tmp_path / "p2.html",
                        "--json", info_path)
    assert code == 0, err
    comp = json.loads(info_path.read_text())["comparison"]
    assert comp["column"] == "aesthetic"
    values = np.array([r["aesthetic"] for r in read_results(runs["aes"]) if not r.get("error")])
    assert abs(comp["runs"][0]["mean"] - values.mean()) < 1e-9


def test_correlation_between_metrics_is_printed_and_reported(runs, tmp_path, capsys):
    records = [r for r in read_results(runs["both"]) if not r.get("error")]
    rho = spearmanr([r["cosine"] for r in records], [r["aesthetic"] for r in records]).statistic
    line = f"Spearman ρ between metrics: cosine~aesthetic {rho:+.3f} (n={len(records)})"
    assert line in runs["printed"]["both"]
    assert "Spearman" not in runs["printed"]["aes"]  # one metric: nothing to correlate

    page_path, info_path = tmp_path / "page.html", tmp_path / "info.json"
    code, _, err = _run(capsys, "report", runs["both"], "--out", page_path, "--json", info_path)
    assert code == 0, err
    assert "correlations" in json.loads(info_path.read_text())["sections"]
    section = _section(html_lib.unescape(page_path.read_text(encoding="utf-8")), "correlations")
    row = re.search(r'<td class="text mono">cosine</td><td class="text mono">aesthetic</td><td>(\d+)</td>'
                    r'<td data-sort="([^"]*)">([^<]*)</td>', section)
    assert row and int(row.group(1)) == len(records)
    assert abs(float(row.group(2)) - rho) < 1e-9 and row.group(3) == f"{rho:+.3f}"


def test_a_file_without_any_score_column_is_refused(tmp_path, capsys):
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps({"image": "a.png", "prompt": "x"}) + "\n")
    code, _, err = _run(capsys, "report", path, "--out", tmp_path / "p.html")
    assert code == 2 and "has no score column" in err and "Traceback" not in err


def test_sweep_of_an_aesthetic_only_run_is_over_its_metric(runs, tmp_path, capsys):
    """--sweep-param on a run without the clip score sweeps the metric the report compares on, not the absent
    cosine (which would leave every row unscored)."""
    info_path = tmp_path / "info.json"
    code, _, err = _run(capsys, "report", runs["aes"], "--out", tmp_path / "page.html", "--sweep-param", "seed",
                        "--json", info_path)
    assert code == 0, err
    info = json.loads(info_path.read_text())
    assert "sweep" in info["sections"]
    (sweep,) = info["sweep"].values()
    assert sweep["column"] == "aesthetic" and sweep["unscored"] == 1  # the missing image
    ok = [r for r in read_results(runs["aes"]) if not r.get("error")]
    for row in sweep["rows"]:  # one image per prompt and seed: the prompts' means are the rows' values
        x = np.array([r["aesthetic"] for r in ok if r["seed"] == row["value"]])
        assert row["n"] == x.size and row["mean"] == pytest.approx(x.mean(), abs=1e-12)
    best = max(sweep["rows"], key=lambda r: r["mean"])
    assert sweep["peak_value"] == best["value"]  # higher aesthetic is better


def test_printed_table_gives_the_metric_mean_of_a_run_without_the_clip_score(runs, tmp_path, capsys):
    code, out, err = _run(capsys, "report", runs["aes"], "--out", tmp_path / "page.html")
    assert code == 0, err
    ok = [r["aesthetic"] for r in read_results(runs["aes"]) if not r.get("error")]
    assert f"{np.mean(ok):.4f} aesthetic" in out  # not '-': the run's first metric, named
    info_path = tmp_path / "info.json"
    assert _run(capsys, "report", runs["both"], "--out", tmp_path / "p2.html", "--json", info_path)[0] == 0
    (run,) = json.loads(info_path.read_text())["runs"]
    cos = [r["cosine"] for r in read_results(runs["both"]) if not r.get("error")]
    assert run["mean_of"] == "cosine" and run["mean"] == pytest.approx(np.mean(cos), abs=1e-12)

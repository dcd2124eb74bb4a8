"""The ``angle`` scale (issue #23, part 2): degrees(arccos(cosine)), lower is better, in every command.

Expected values are computed here with ``numpy.degrees(numpy.arccos(cosine))`` from the results' cosine column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import score_rows_with_demo

from clipgauge.cli import main
from clipgauge.scoring.scales import aggregate, higher_is_better, to_scale
from clipgauge.sinks import read_results
from clipgauge.stats.filtering import filter_rows


def degrees(cosine: object) -> np.ndarray:
    """The reference: numpy's arccos of the cosine, in degrees."""
    return np.degrees(np.arccos(np.asarray(cosine, dtype=np.float64)))


def run_json(capsys: pytest.CaptureFixture[str], *argv: object) -> dict:
    """Run the CLI with ``--json`` and return the document it prints."""
    capsys.readouterr()  # drop what came before (the fixture's scoring)
    code = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture()
def scored(image_set: tuple[Path, list[dict]]) -> tuple[Path, list[dict]]:
    """The image set scored with the demo CLIP, every row with a prompt_id and a cfg."""
    folder, rows = image_set
    rows = [dict(r, prompt_id=f"p{i % 3}", cfg=float(i)) for i, r in enumerate(rows)]
    results = score_rows_with_demo(folder, rows)
    return results, read_results(results)


def test_scale_definition() -> None:
    cos = np.array([1.0, 0.5, 0.0, -1.0, 1.0 + 1e-7, np.nan])
    got = to_scale(cos, "angle")
    np.testing.assert_allclose(got[:4], degrees(cos[:4]))
    assert got[4] == 0.0 and np.isnan(got[5])  # clipped into [-1, 1]; NaN stays NaN
    assert aggregate(np.array([1.0, 0.0]), "angle") == pytest.approx(45.0)  # mean angle, not arccos(mean) = 60°
    assert not higher_is_better("angle") and higher_is_better("clip-s")


def test_score_summary_and_score_column(scored: tuple[Path, list[dict]], tmp_path: Path) -> None:
    results, records = scored
    summary = json.loads(results.with_name(results.name + ".summary.json").read_text(encoding="utf-8"))
    angles = degrees([r["cosine"] for r in records])
    assert summary["scales"]["angle"]["mean"] == pytest.approx(angles.mean())
    assert summary["scales"]["angle"]["max"] == pytest.approx(angles.max())
    out = tmp_path / "angle.jsonl"
    assert main(["score", str(results.parent / "manifest.jsonl"), "--model", "demo", "--device", "cpu",
                 "--scale", "angle", "--out", str(out)]) == 0
    rows = read_results(out)
    np.testing.assert_allclose([r["score"] for r in rows], degrees([r["cosine"] for r in rows]), atol=1e-9)


def test_compare_lower_mean_angle_wins(capsys: pytest.CaptureFixture[str], scored: tuple[Path, list[dict]],
                                       tmp_path: Path) -> None:
    results, records = scored
    worse = tmp_path / "worse.jsonl"  # every cosine lowered: every angle larger
    worse.write_text("".join(json.dumps(dict(r, cosine=r["cosine"] - 0.05)) + "\n" for r in records))
    doc = run_json(capsys, "compare", results, worse, "--key", "id", "--scale", "angle")
    means = {r["name"]: r["mean"] for r in doc["runs"]}
    assert means["results"] == pytest.approx(degrees([r["cosine"] for r in records]).mean())
    assert means["worse"] == pytest.approx(degrees([r["cosine"] - 0.05 for r in records]).mean())
    assert doc["higher_is_better"] is False
    pair = doc["pairs"][0]
    assert pair["better"] == "results" and pair["mean_diff"] < 0
    assert "Lower is better on the angle scale: results is better." in pair["sentence"]
    assert run_json(capsys, "compare", results, worse, "--key", "id")["pairs"][0]["better"] == "results"


def test_select_picks_the_smallest_angle(capsys: pytest.CaptureFixture[str],
                                         scored: tuple[Path, list[dict]]) -> None:
    results, records = scored
    doc = run_json(capsys, "select", results, "--scale", "angle")
    angles = degrees([r["cosine"] for r in records])
    for g in doc["groups"]:
        idx = [i for i, r in enumerate(records) if r["prompt_id"] == g["key"][0]]
        best = min(idx, key=lambda i: angles[i])
        assert g["chosen"][0]["row"] == best
        assert g["chosen"][0]["score"] == pytest.approx(angles[best])
    assert doc["gain"] >= 0


def test_sweep_peaks_at_the_smallest_mean_angle(capsys: pytest.CaptureFixture[str],
                                                scored: tuple[Path, list[dict]]) -> None:
    results, records = scored
    doc = run_json(capsys, "sweep", results, "--param", "cfg", "--scale", "angle")
    angles = degrees([r["cosine"] for r in records])
    by_cfg = {float(r["cfg"]): a for r, a in zip(records, angles)}
    assert float(doc["peak_value"]) == min(by_cfg, key=by_cfg.get)
    assert doc["peak_mean"] == pytest.approx(min(by_cfg.values()))


def test_filter_in_degrees(capsys: pytest.CaptureFixture[str], scored: tuple[Path, list[dict]],
                           tmp_path: Path) -> None:
    results, records = scored
    angles = degrees([r["cosine"] for r in records])
    t = float(np.median(angles))
    out = tmp_path / "kept.jsonl"
    doc = run_json(capsys, "filter", results, "--scale", "angle", "--min-score", t, "--out", out)
    kept = read_results(out)
    assert [r["id"] for r in kept] == [r["id"] for r, a in zip(records, angles) if a <= t]
    assert doc["kept"] == int(np.sum(angles <= t)) and doc["higher_is_better"] is False
    assert filter_rows(records, min_score=t, scale="angle").kept == [int(i) for i in np.flatnonzero(angles <= t)]
    out = tmp_path / "top.jsonl"
    run_json(capsys, "filter", results, "--scale", "angle", "--top-fraction", 0.25, "--out", out)
    k = int(np.ceil(0.25 * len(records)))
    smallest = sorted(np.argsort(angles, kind="stable")[:k].tolist())
    assert [r["id"] for r in read_results(out)] == [records[i]["id"] for i in smallest]


def test_report_in_angle(scored: tuple[Path, list[dict]], tmp_path: Path) -> None:
    results, records = scored
    html = tmp_path / "report.html"
    assert main(["report", str(results), "--scale", "angle", "--out", str(html), "--max-images", "0",
                 "--json", str(tmp_path / "report.json")]) == 0
    page = html.read_text(encoding="utf-8")
    assert "lower is better" in page and "not the angle of the mean cosine" in page
    mean = degrees([r["cosine"] for r in records]).mean()
    assert f"{mean:.4f}" in page


def test_tracker_angle_mean(scored: tuple[Path, list[dict]]) -> None:
    from clipgauge.track import CLIPTracker

    results, records = scored
    folder = results.parent
    images = [str(folder / r["image"]) for r in records]
    prompts = [r["prompt"] for r in records]
    tracker = CLIPTracker("demo", prompts=list(dict.fromkeys(prompts)), device="cpu", scale="angle")
    result = tracker.log(0, images, prompts=prompts)
    cos = np.array([r["cosine"] for r in records])
    angles = degrees(cos)
    assert result.metrics["clip/angle_mean"] == pytest.approx(angles.mean(), abs=1e-3)
    assert result.metrics["clip/angle_max"] == pytest.approx(angles.max(), abs=1e-3)
    assert result.metrics["clip/mean"] == pytest.approx(cos.mean(), abs=1e-5)  # alerts keep the cosine

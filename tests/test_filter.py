"""``clipgauge filter`` and :func:`clipgauge.stats.filtering.filter_rows`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.sinks import read_results, write_results
from clipgauge.stats.filtering import filter_rows

COLUMNS = ["id", "image", "prompt", "score", "cosine", "truncated", "error"]


def rows_with(cosines) -> list[dict]:
    out = []
    for i, c in enumerate(cosines):
        err = "file not found: x" if c is None else None
        out.append({"id": f"r{i}", "image": f"{i}.png", "prompt": "p", "score": c, "cosine": c, "truncated": False,
                    "error": err})
    return out


COS = [0.31, 0.27, None, 0.28, 0.10, 0.35, 0.28, -0.05]


def test_min_score_keeps_rows_at_or_above_the_threshold() -> None:
    r = filter_rows(rows_with(COS), min_score=0.28)
    assert r.kept == [0, 3, 5, 6]
    assert (r.rows, r.n_kept, r.dropped, r.dropped_low, r.unscored) == (8, 4, 4, 3, 1)
    assert r.threshold == 0.28


def test_threshold_is_in_the_chosen_scale() -> None:
    records = rows_with(COS)
    assert filter_rows(records, min_score=28, scale="torchmetrics").kept == [0, 3, 5, 6]
    # clip-s = 2.5 * max(cos, 0): 0.7 ⇔ cosine 0.28
    assert filter_rows(records, min_score=0.7, scale="clip-s").kept == [0, 3, 5, 6]
    # clip-s clamps negatives to 0: every scored row passes a threshold of 0
    assert filter_rows(records, min_score=0.0, scale="clip-s").n_kept == 7


def test_top_fraction_keeps_the_best_ceil_f_n_scored_rows() -> None:
    records = rows_with(COS)
    r = filter_rows(records, top_fraction=0.3)  # 7 scored → ceil(2.1) = 3 best: 0.35, 0.31, 0.28 (first of tie)
    assert r.kept == [0, 3, 5]
    assert r.threshold == pytest.approx(0.28)
    assert filter_rows(records, top_fraction=1.0).n_kept == 7
    rng = np.random.default_rng(0)
    big = rows_with(list(rng.normal(0.3, 0.05, 1000)))
    kept = filter_rows(big, top_fraction=0.3)
    values = np.array([r["cosine"] for r in big])
    assert kept.n_kept == 300
    assert set(kept.kept) == set(np.argsort(-values)[:300].tolist())


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        filter_rows(rows_with(COS))
    with pytest.raises(UsageError):
        filter_rows(rows_with(COS), min_score=0.2, top_fraction=0.5)
    with pytest.raises(UsageError):
        filter_rows(rows_with(COS), top_fraction=1.5)


def test_cli_writes_kept_and_dropped_rows(tmp_path, capsys) -> None:
    src = tmp_path / "results.csv"
    write_results(src, rows_with(COS), COLUMNS)
    out, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.parquet"
    assert main(["filter", str(src), "--min-score", "0.28", "--out", str(out), "--dropped", str(dropped)]) == 0
    text = capsys.readouterr().out
    assert "wrote 4 rows" in text
    kept = read_results(out)
    assert [r["id"] for r in kept] == ["r0", "r3", "r5", "r6"]
    assert list(kept[0]) == COLUMNS  # every column carried through
    assert [r["id"] for r in read_results(dropped)] == ["r1", "r2", "r4", "r7"]
    assert main(["filter", str(src), "--top-fraction", "0.5", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["rows"], doc["kept"], doc["dropped"], doc["unscored"]) == (8, 4, 4, 1)
    assert doc["threshold"] == pytest.approx(0.28)


def test_cli_usage_errors(tmp_path, capsys) -> None:
    src = tmp_path / "results.jsonl"
    write_results(src, rows_with(COS), COLUMNS)
    out = str(tmp_path / "k.jsonl")
    assert main(["filter", str(src), "--out", out]) == 2
    assert main(["filter", str(src), "--min-score", "0.2", "--top-fraction", "0.1", "--out", out]) == 2
    assert main(["filter", str(src), "--min-score", "0.2", "--out", str(tmp_path / "k.txt")]) == 2
    assert main(["filter", str(src), "--min-score", "0.2"]) == 2
    assert "Traceback" not in capsys.readouterr().err

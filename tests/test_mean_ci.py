"""One "mean with its CI" for compare's runs and sweep's rows: the same numbers as ``describe``, and the JSON
keys in the order they always had."""

from __future__ import annotations

import numpy as np

from clipgauge.stats.compare import RunStats, run_stats
from clipgauge.stats.summary import MeanCI, describe
from clipgauge.stats.sweep import SweepRow, sweep_table

MEAN_KEYS = ["n", "mean", "std", "ci_low", "ci_high", "ci_method"]


def test_run_stats_and_sweep_rows_share_one_mean_ci():
    values = np.array([0.2, 0.3, np.nan, 0.25, 0.4])
    records = [{"cosine": v, "error": None if not np.isnan(v) else "bad", "cfg": 1.0} for v in values]
    run = run_stats("a", records, values, confidence=0.9, seed=3)
    assert isinstance(run, RunStats) and isinstance(run, MeanCI)
    d = describe(values, confidence=0.9, seed=3)
    assert run.to_dict() == {"name": "a", "rows": 5, "errors": 1, **{k: d[k] for k in MEAN_KEYS}}
    assert list(run.to_dict()) == ["name", "rows", "errors", *MEAN_KEYS]
    sweep = sweep_table(records, "cfg", confidence=0.9, seed=3)
    (row,) = sweep.rows
    assert isinstance(row, SweepRow) and isinstance(row, MeanCI)
    assert list(row.to_dict()) == ["value", "rows", *MEAN_KEYS]
    assert list(sweep.table()[0])[:8] == ["value", "rows", *MEAN_KEYS]
    assert row.to_dict()["mean"] == d["mean"] and row.n == 4


def test_no_values_is_nan_with_a_reason():
    fields = MeanCI.of(np.array([np.nan]))
    assert fields["n"] == 0 and np.isnan(fields["mean"]) and fields["ci_method"] == "none (no values)"

"""The run summary, derived from the active metrics and read back from the committed parts.

Only what the summary needs is read, one column at a time: each metric's own columns (8 bytes a row for a float),
and the ``error`` column (counted part by part). The rows themselves are never held.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.base import Metric
from ..sinks.sharded import list_parts, read_column, read_part, read_parts
from ..stats.correlation import spearman_rho
from ..stats.summary import describe
from .plan import ERROR_COLUMN

CONFIDENCE = 0.95
#: the fewest rows with both values for which the summary gives a correlation between two metrics (else NaN)
MIN_CORRELATION_ROWS = 3
_DTYPES = {"float64": np.float64, "bool": bool, "int64": np.float64, "string": None}


def summarize_run(folder: str | Path, plan_or_metrics: Any, *, confidence: float = CONFIDENCE
                  ) -> tuple[dict[str, Any], str | None]:
    """``(summary, first error)`` of the results in *folder* for the metrics of a plan (or a list of metrics).

    The summary holds ``rows``, ``scored``, ``errors``, ``truncated``, ``confidence``, whatever each metric's
    ``summarize`` returns (for ``clip``: ``scales`` and ``scale``; for others, per-column statistics under the
    column's name), ``metrics`` (their names) and ``columns`` (every metric column's declaration).
    """
    import pyarrow.compute as pc

    metrics: list[Metric] = getattr(plan_or_metrics, "metrics", plan_or_metrics)
    n_errors, first_error, rows = 0, None, 0
    for _, path in list_parts(folder).items():
        col = read_part(path, [ERROR_COLUMN]).column(ERROR_COLUMN)
        rows += col.length()
        bad = col.length() - col.null_count
        if bad and first_error is None:
            first_error = col.filter(pc.is_valid(col))[0].as_py()
        n_errors += bad
    summary: dict[str, Any] = {"rows": rows, "scored": rows - n_errors, "errors": n_errors, "truncated": 0,
                               "confidence": confidence}
    scores: dict[str, np.ndarray] = {}  # each metric's score columns, for the correlations between metrics
    for metric in metrics:
        values = {}
        primary = metric.primary()
        for c in (*metric.columns(), *metric.run_columns()):
            dtype = _DTYPES[c.type]
            if dtype is not None:
                values[c.name] = _column(folder, c.name, dtype)
            elif c.name in getattr(metric, "counted_columns", ()):  # string columns: value -> rows (None: empty)
                values[c.name] = _counts(folder, c.name)
            if c.type == "float64" and c.higher_is_better is not None and (c.summarize or c == primary):
                scores[c.name] = values[c.name]
        own = metric.summarize(values, confidence=confidence)
        summary.update(own)
        for c in metric.run_columns():
            if c.summarize and c.type == "float64" and c.name not in own:  # unless the metric summarised it
                summary[c.name] = describe(values[c.name], confidence=confidence)
    if len(scores) > 1:
        summary["correlations"] = correlations(scores)
    summary["metrics"] = [m.name for m in metrics]
    summary["columns"] = [{**d, "metric": m.name} for m in metrics for d in m.declarations()]
    return summary, first_error


def correlations(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Spearman's rank correlation between every two score columns, over the rows that have both values.

    Shows how far the metrics of one run agree (prompt adherence vs aesthetics, say): ρ in [-1, 1]
    (:func:`~clipgauge.stats.correlation.spearman_rho`), NaN for fewer than :data:`MIN_CORRELATION_ROWS` rows or
    a constant column.
    """
    names = list(columns)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = columns[a], columns[b]
            both = ~np.isnan(x) & ~np.isnan(y)
            rho = spearman_rho(x[both], y[both], min_rows=MIN_CORRELATION_ROWS)
            pairs.append({"a": a, "b": b, "n": int(both.sum()), "rho": rho})
    return {"method": "Spearman rank correlation (average ranks for ties)", "pairs": pairs}


def _counts(folder: str | Path, name: str) -> Counter:
    """Rows per value of a string column, part by part (None counts the empty rows)."""
    counts: Counter = Counter()
    for _, table in read_parts(folder, [name]):
        col = table.column(name)
        for item in col.value_counts().to_pylist():
            counts[item["values"]] += item["counts"]
    return counts


def _column(folder: str | Path, name: str, dtype: Any) -> np.ndarray:
    if dtype is bool:  # flags are never null (False where a row has no value)
        return read_column(folder, name, dtype=np.float64) > 0.5
    return read_column(folder, name, dtype=dtype)

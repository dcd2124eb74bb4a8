"""The report's sections for metrics other than the clip score: every column a run's summary declares (its unit,
range and better direction), their statistics, histograms and per-category means."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# a sibling module by its full name, so this module does not import its package's __init__ back
import clipgauge.report.plots as plots

from ..stats.records import as_float, key_value
from ..stats.summary import describe
from .cells import Cell, sort_value
from .inputs import ReportRun


def primary_metric(runs: Sequence[ReportRun]) -> tuple[str, bool] | None:
    """When a run lacks the clip score: the first primary column of a metric (:attr:`ReportRun.primaries`) that
    every run has, with whether higher is better. None when every run has the clip score or none is shared."""
    if not runs or all(r.has_clip for r in runs):
        return None
    return next((p for p in runs[0].primaries if all(p in r.primaries for r in runs[1:])), None)


def metric_rows(runs: Sequence[ReportRun], confidence: float) -> list[dict[str, Any]]:
    """Per run and declared metric column: its statistics over the rows, with the column's unit, range and
    direction as the metric declared them."""
    out = []
    for i, run in enumerate(runs):
        declared = {c["name"]: c for c in (run.summary or {}).get("columns") or []}
        for name in run.metric_columns():
            values = np.array([as_float(r.get(name)) for r in run.records], dtype=np.float64)
            c = declared[name]
            rng = c.get("range")
            out.append({"index": i, "run": run.name, "column": name, "metric": c.get("metric", ""),
                        "unit": c.get("unit", ""), "range": f"[{_bound(rng[0])}, {_bound(rng[1])}]" if rng else "",
                        "better": {True: "higher", False: "lower"}.get(c.get("higher_is_better"), ""),
                        "stats": describe(values, confidence=confidence)})
    return out


def metric_histograms(runs: Sequence[ReportRun]) -> list[dict[str, Any]]:
    """Per declared metric column: one histogram per run that has it, on bins shared by those runs."""
    out = []
    for column in dict.fromkeys(c for r in runs for c in r.metric_columns()):
        having = [(i, r) for i, r in enumerate(runs) if column in r.metric_columns()]
        values = [np.array([as_float(rec.get(column)) for rec in r.records], dtype=np.float64) for _, r in having]
        bins = plots.shared_bins(values)
        out.append({"column": column, "charts": [
            {"name": r.name, "uri": plots.histogram(v, bins, name=r.name, xlabel=column, index=i)}
            for (i, r), v in zip(having, values)]})
    return out


def metric_categories(runs: Sequence[ReportRun], category: str, confidence: float) -> dict[str, Any] | None:
    """Mean [CI] (n) of every declared metric column per value of *category*, for each run; None without
    such columns or without the category column."""
    columns = [(r, c) for r in runs for c in r.metric_columns()]
    if not columns or not any(category in r.columns for r in runs):
        return None
    labels = {r.name: [key_value(rec.get(category)) or "(none)" for rec in r.records] for r in runs}
    values = sorted({v for lab in labels.values() for v in lab})
    header = [category] + [f"{c} · {r.name}: mean [CI] (n)" for r, c in columns]
    rows = []
    for v in values:
        row = [Cell(v)]
        for r, c in columns:
            x = np.array([as_float(rec.get(c)) for rec, lab in zip(r.records, labels[r.name]) if lab == v])
            d = describe(x, confidence=confidence)
            text = f"{d['mean']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}] (n={d['n']})"
            row.append(Cell(text, sort_value(d["mean"])) if d["n"] else Cell("–", ""))
        rows.append(row)
    return {"column": category, "header": header, "rows": rows}


def _bound(x: Any) -> str:
    return "–∞" if x is None else f"{x:g}"


def correlations(runs: Sequence[ReportRun]) -> list[dict[str, Any]]:
    """Per run and pair of its score columns: Spearman's ρ in [-1, 1] over the rows with both values, as the
    run's summary gives it (``correlations``, written by a run with several metrics); [] when none has it."""
    out = []
    for i, run in enumerate(runs):
        doc = (run.summary or {}).get("correlations") or {}
        for p in doc.get("pairs") or []:
            rho = as_float(p.get("rho"))
            out.append({"index": i, "run": run.name, "a": str(p.get("a")), "b": str(p.get("b")),
                        "n": int(p.get("n") or 0), "rho": rho, "text": "–" if np.isnan(rho) else f"{rho:+.3f}"})
    return out

"""The report's sections as plain data for the template: tables (cells of text + sort value), charts, grids.

All scores are in the report's scale (``cosine`` in [-1, 1], ``torchmetrics`` = 100 × cosine, ``clip-s`` in
[0, 2.5], ``angle`` in degrees, lower is better). Statistics come from :mod:`clipgauge.stats`: run summaries,
paired comparisons
(:func:`~clipgauge.stats.compare.compare_runs`) and sweeps (:func:`~clipgauge.stats.sweep.sweep_table`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# a sibling module by its full name, so this module does not import its package's __init__ back
import clipgauge.report.plots as plots

from ..errors import UsageError
from ..metrics.clip import ClipScore
from ..scoring.scales import higher_is_better as scale_higher_is_better
from ..scoring.scales import to_scale
from ..stats.compare import Comparison, compare_runs, format_p, run_stats
from ..stats.records import as_float, key_value, record_key
from ..stats.summary import summarize_scores
from ..stats.sweep import Sweep, display_value, sweep_table
from .cells import Cell, Formatter, sort_value
from .inputs import ReportRun
from .thumbnails import thumbnails

#: Columns a card shows in its own places (the image, the prompt, the score line); the others (metric columns
#: first) are its "meta" line. The score line's columns are the ``clip`` metric's own declaration.
CARD_COLUMNS = ("image", "prompt", "error", *(c.name for c in ClipScore().columns()))
#: Matching keys tried, in order, when none is given: the first whose columns every run has and that
#: identifies each run's rows. With a sweep, the swept column is tried as a further key column.
AUTO_KEYS = (("prompt_id",), ("prompt_id", "seed"), ("prompt",), ("prompt", "seed"))
#: At most this many categories are drawn (those with the most rows); the table lists all.
MAX_PLOTTED_CATEGORIES = 40
#: Card meta line: at most this many extra columns, each value cut to this many characters.
META_COLUMNS, META_CHARS = 6, 40


# ---------------------------------------------------------------- summary
def summary_rows(runs: Sequence[ReportRun], scale: str, confidence: float) -> list[dict[str, Any]]:
    """Per run: counts and the run summary (:func:`summarize_scores`) in *scale*. A run without the clip score
    counts its rows without an error as scored (its metrics' statistics are in the metrics section), and its
    ``mean`` is that of its first metric column, named by ``mean_of`` (else the clip score's, ``mean_of`` =
    *scale*)."""
    out = []
    for i, run in enumerate(runs):
        s = summarize_scores(run.clip_scores(), run.truncated(), run.errors(), confidence=confidence)
        stats = s["scales"][scale]
        mean, mean_of = stats["mean"], scale
        if not run.has_clip:
            s["scored"] = s["rows"] - s["errors"]
            if run.primary is not None:
                mean_of = run.primary[0]
                values = run.values(mean_of)
                values = values[~np.isnan(values)]
                mean = float(values.mean()) if values.size else math.nan
        weights = run.weights_sha256
        out.append({
            "index": i, "name": run.name, "path": str(run.path), "colour": plots.colour(i), "model": run.model,
            "weights": weights, "rows": s["rows"], "scored": s["scored"], "errors": s["errors"],
            "truncated": s["truncated"], "stats": stats, "mean": mean, "mean_of": mean_of,
        })
    return out


# ---------------------------------------------------------------- comparison
def candidate_keys(sweep_param: str | None = None) -> list[tuple[str, ...]]:
    """:data:`AUTO_KEYS`, each followed by itself plus *sweep_param* when one is given."""
    out: list[tuple[str, ...]] = []
    for key in AUTO_KEYS:
        out.append(key)
        if sweep_param and sweep_param not in key:
            out.append((*key, sweep_param))
    return out


def auto_key(runs: Sequence[ReportRun], sweep_param: str | None = None) -> tuple[str, ...] | None:
    """The first of :func:`candidate_keys` present in every run and unique within each; None if none fits."""
    common = set.intersection(*(set(r.columns) for r in runs)) if runs else set()
    for key in candidate_keys(sweep_param):
        if all(c in common for c in key) and all(_unique(r.records, key) for r in runs):
            return key
    return None


def _unique(records: Sequence[dict[str, Any]], key: tuple[str, ...]) -> bool:
    keys = [record_key(r, key) for r in records]
    present = [k for k in keys if k is not None]
    return bool(present) and len(set(present)) == len(present)


def comparison(runs: Sequence[ReportRun], scale: str, key: tuple[str, ...] | None, category: str,
               confidence: float, sweep_param: str | None = None, metric: tuple[str, bool] | None = None,
               ) -> tuple[Comparison | None, dict[str, Any] | None]:
    """The paired comparison of 2+ runs and its table; ``(None, None)`` for a single run.

    Runs compare on the clip score in *scale*, or on *metric* ``(column, higher_is_better)`` as written when
    given (runs without the clip score).

    With no *key*, one is guessed (:func:`auto_key`); when none fits, the section explains that rows could
    not be paired instead of comparing unpaired means. An explicit *key* that does not work raises
    :class:`UsageError`.
    """
    if len(runs) < 2:
        return None, None
    explicit = key is not None
    key = key or auto_key(runs, sweep_param)
    if key is None:
        tried = "; ".join(",".join(k) for k in candidate_keys(sweep_param))
        return None, {
            "description": "Runs are compared pair by pair on matched rows, but no set of columns identifies the "
            f"rows of every run (tried: {tried}). Name the columns that do with --key.",
            "header": [], "rows": [], "text_columns": 0, "notes": [],
        }
    try:
        column, higher = metric if metric is not None else (None, True)
        comp = compare_runs({r.name: r.records for r in runs}, key=key, scale=scale, by=(category,),
                            confidence=confidence, column=column, higher_is_better=higher)
    except UsageError:
        if explicit:
            raise
        return None, None
    fmt = Formatter(scale)
    conf = round(100 * confidence)
    unit = comp.unit
    header = ["A", "B", "image pairs", f"n ({unit})", "mean A", "mean B", "A − B", f"{conf}% CI", "p", "p (Holm)",
              "A wins", "ties", f"{unit} for 80% power"]
    rows = []
    for p in comp.pairs:
        t = p.test
        rows.append({"significant": p.significant, "cells": [
            Cell(p.a), Cell(p.b), Cell(str(p.pairs), str(p.pairs)), Cell(str(t.n), str(t.n)),
            Cell(fmt(t.mean_a), sort_value(t.mean_a)), Cell(fmt(t.mean_b), sort_value(t.mean_b)),
            Cell(fmt(t.mean_diff, True), sort_value(t.mean_diff)),
            Cell(fmt.ci(t.ci_low, t.ci_high, True), sort_value(t.ci_low)),
            Cell(format_p(t.p_value), sort_value(t.p_value)), Cell(format_p(p.p_adjusted), sort_value(p.p_adjusted)),
            Cell(_pct(t.win_rate), sort_value(t.win_rate)), Cell(_pct(t.tie_rate), sort_value(t.tie_rate)),
            Cell(_count(t.n_required), sort_value(t.n_required)),
        ]})
    notes = [p.sentence for p in comp.pairs]
    for p in comp.pairs:
        u = p.unmatched or {}
        parts = [f"{u['only_a']} rows only in {p.a}"] if u.get("only_a") else []
        parts += [f"{u['only_b']} rows only in {p.b}"] if u.get("only_b") else []
        no_key = u.get("no_key_a", 0) + u.get("no_key_b", 0)
        parts += [f"{no_key} rows without a value in {', '.join(key)}"] if no_key else []
        parts += [f"{p.unscored} matched pairs with an unscored side"] if p.unscored else []
        if parts:
            notes.append(f"{p.a} vs {p.b}, left out of the comparison: " + "; ".join(parts) + ".")
    units = (f" Differences are averaged per {', '.join(comp.cluster)} first (images of one prompt are not "
             f"independent), so n counts {unit}." if comp.cluster else "")
    description = (
        (f"Compared on {metric[0]} ({'higher' if metric[1] else 'lower'} is better). " if metric else "") +
        f"Rows matched on {', '.join(key)}{' (guessed; set with --key)' if not explicit else ''}; "
        f"differences A − B with a {conf}% paired bootstrap CI and a sign-flip permutation p-value.{units} "
        f"Bold rows are significant at α = {comp.alpha:g} after Holm adjustment over this table."
    )
    return comp, {"description": description, "header": header, "rows": rows, "text_columns": 2, "notes": notes}


def _pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


def _count(x: float) -> str:
    if x is None or math.isnan(x):
        return "–"
    return "∞" if math.isinf(x) else f"{x:,.0f}"


# ---------------------------------------------------------------- categories
def categories(runs: Sequence[ReportRun], scale: str, column: str, confidence: float,
               comp: Comparison | None) -> dict[str, Any] | None:
    """Mean score per value of *column* for each run (bar chart + table); None when no run has the column."""
    if not any(column in r.columns for r in runs):
        return None
    fmt = Formatter(scale)
    labels = {r.name: [key_value(rec.get(column)) or "(none)" for rec in r.records] for r in runs}
    counts: dict[str, int] = {}
    for lab in labels.values():
        for v in lab:
            counts[v] = counts.get(v, 0) + 1
    values = sorted(counts)
    groups = (comp.breakdowns.get(column, []) if comp else [])
    # the comparison already has each run's statistics per value; the rest (e.g. "(none)") are computed here
    stats = {(s.name, g.value): s for g in groups for s in g.runs}
    for r in runs:
        score = to_scale(r.clip_scores(), scale)
        lab = np.array(labels[r.name], dtype=object)
        for v in values:
            if (r.name, v) in stats:
                continue
            mask = lab == v
            recs = [rec for rec, keep in zip(r.records, mask) if keep]
            stats[(r.name, v)] = run_stats(r.name, recs, score[mask], confidence=confidence, seed=0)
    pairs_by_value = {g.value: g.pairs for g in groups} if len(runs) <= 3 else {}
    pair_names = [(p.a, p.b) for p in groups[0].pairs] if pairs_by_value and groups else []
    header = [column] + [f"{r.name}: mean [CI] (n)" for r in runs] + [f"{a} − {b} (p Holm)" for a, b in pair_names]
    rows = []
    for v in values:
        row = [Cell(v)]
        for r in runs:
            s = stats[(r.name, v)]
            row.append(fmt.mean_ci(s.mean, s.ci_low, s.ci_high, s.n))
        for p in pairs_by_value.get(v, [None] * len(pair_names)):
            if p is None or p.test.n < 2:
                row.append(Cell("–", ""))
            else:
                t = p.test
                row.append(Cell(f"{fmt(t.mean_diff, True)} {fmt.ci(t.ci_low, t.ci_high, True)} "
                                f"(p {format_p(p.p_adjusted)})", sort_value(t.mean_diff)))
        rows.append(row)
    plotted = sorted(values, key=lambda v: -counts[v])[:MAX_PLOTTED_CATEGORIES]
    plotted = [v for v in values if v in set(plotted)]
    series = [plots.Series(r.name, [stats[(r.name, v)].mean for v in plotted],
                           [stats[(r.name, v)].ci_low for v in plotted],
                           [stats[(r.name, v)].ci_high for v in plotted]) for r in runs]
    note = ""
    if len(plotted) < len(values):
        note = f"The chart shows the {len(plotted)} values with the most rows; the table lists all {len(values)}."
    return {"column": column, "header": header, "rows": rows, "note": note,
            "uri": plots.category_bars(plotted, series, ylabel=f"mean score ({scale})")}


# ---------------------------------------------------------------- sweep
def sweep(runs: Sequence[ReportRun], scale: str, param: str, confidence: float,
          metric: tuple[str, bool] | None = None) -> tuple[dict[str, Any], dict]:
    """Mean score per value of the numeric column *param*, per run: ``(section, json)``: the clip score in
    *scale*, or *metric* ``(column, higher_is_better)`` as written when given (runs without the clip score).

    Runs without the column are left out (and named); :class:`UsageError` when no run has it. When every
    such run has ``prompt_id``, images of one prompt at one value are averaged first, so the CI is over prompts.
    """
    having = [r for r in runs if param in r.columns]
    if not having:
        raise UsageError(f"sweep parameter: no results file has a '{param}' column",
                         cli=f"--sweep-param: no results file has a '{param}' column")
    group_by = ("prompt_id",) if all("prompt_id" in r.columns for r in having) else None
    column, higher = metric if metric is not None else (None, True)
    sweeps: dict[str, Sweep] = {r.name: sweep_table(r.records, param, group_by=group_by, scale=scale, column=column,
                                                   confidence=confidence, higher_is_better=higher) for r in having}
    fmt = Formatter(scale)
    xs = sorted({row.value for s in sweeps.values() for row in s.rows})
    by_value = {name: {row.value: row for row in s.rows} for name, s in sweeps.items()}
    header = [param] + [f"{name}: mean [CI] (n)" for name in sweeps]
    rows = []
    for x in xs:
        row = [Cell(str(display_value(x)), sort_value(x))]
        for name in sweeps:
            sr = by_value[name].get(x)
            row.append(fmt.mean_ci(sr.mean, sr.ci_low, sr.ci_high, sr.n) if sr else Cell("–", ""))
        rows.append(row)
    series = []
    for name in sweeps:
        pts = [by_value[name].get(x) for x in xs]
        series.append(plots.Series(name, [p.mean if p else math.nan for p in pts],
                                   [p.ci_low if p else math.nan for p in pts],
                                   [p.ci_high if p else math.nan for p in pts]))
    notes = []
    if group_by:
        notes.append("Images of one prompt_id at one value are averaged first: n counts prompts, the CI is over "
                     "prompts.")
    for name, s in sweeps.items():
        if s.rows:
            notes.append(f"{name}: peak at {param} = {display_value(s.peak_value)} (mean {fmt(s.peak_mean)}); "
                         f"smallest value within the peak's CI: {display_value(s.plateau_value)}.")
        left = [f"{s.unscored} unscored"] if s.unscored else []
        left += [f"{s.no_value} without a numeric {param}"] if s.no_value else []
        left += [f"{s.no_group} without a prompt_id"] if s.no_group else []
        if left:
            notes.append(f"{name}: rows not in the sweep: {', '.join(left)}.")
    missing = [r.name for r in runs if r not in having]
    if missing:
        notes.append(f"Not in the sweep (no '{param}' column): {', '.join(missing)}.")
    section = {"param": param, "header": header, "rows": rows, "notes": notes,
               "uri": plots.sweep_curves(param, xs, series, numeric=True,
                                         ylabel=f"mean {column}" if column else f"mean score ({scale})")}
    return section, {name: s.to_dict() for name, s in sweeps.items()}


# ---------------------------------------------------------------- unscored rows
def error_rows(runs: Sequence[ReportRun], limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first *limit* rows that could not be scored (run, 1-based row, image, prompt, reason) and the total."""
    out, total = [], 0
    for r in runs:
        for i, (rec, err) in enumerate(zip(r.records, r.errors())):
            if err is None:
                continue
            total += 1
            if len(out) < limit:
                out.append({"run": r.name, "row": i + 1, "image": _text(rec.get("image")),
                            "prompt": _text(rec.get("prompt")), "error": err})
    return out, total


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# ---------------------------------------------------------------- image grids
def grids(runs: Sequence[ReportRun], scale: str, max_images: int, thumb_size: int) -> list[dict[str, Any]]:
    """Per run: its scored images, worst first, at most *max_images*, each with an embedded thumbnail
    (or the reason there is none), score, truncation flag, prompt and a few other columns.

    The score is the clip score in *scale*; a run without it (aesthetic alone, say) is ordered by its first
    declared metric column, worst first in that column's better direction (``by``)."""
    fmt = Formatter(scale)
    out = []
    for gi, r in enumerate(runs):
        by, higher = (None, True) if r.has_clip or r.primary is None else r.primary
        if by is None:
            score, sign = to_scale(r.clip_scores(), scale), 1.0 if scale_higher_is_better(scale) else -1.0
        else:
            score = r.values(by)
            sign = 1.0 if higher else -1.0
        badness = sign * score  # ascending = worst first (what the page's "worst first" order sorts on)
        trunc = r.truncated()
        scored = np.flatnonzero(~np.isnan(score))
        order = scored[np.argsort(badness[scored], kind="stable")]
        shown = order[:max_images].tolist()
        located = [r.resolve_image(r.records[i].get("image")) for i in shown]
        thumbs = iter(thumbnails([p for p, _ in located if p is not None], thumb_size))
        declared = [c for c in r.metric_columns() if c in r.columns]
        meta_cols = [c for c in dict.fromkeys([*declared, *r.columns])
                     if c not in CARD_COLUMNS and c != by
                     and r.declaration(c).get("unit") != "embedding"][:META_COLUMNS]  # diversity's vectors
        cards = []
        for i, (path, reason) in zip(shown, located):
            rec = r.records[i]
            th = next(thumbs) if path is not None else None
            text = fmt(float(score[i])) if by is None else f"{by} {float(score[i]):.4f}"
            card = {"row": i + 1, "score": float(score[i]), "sort": float(badness[i]), "score_text": text,
                    "truncated": bool(trunc[i]),
                    "metrics": [sort_value(as_float(rec.get(c))) for c in declared],
                    "prompt": _text(rec.get("prompt")), "image": _text(rec.get("image")),
                    "meta": [(c, _short(_text(rec.get(c)))) for c in meta_cols if _text(rec.get(c)) != ""],
                    "uri": None, "width": 0, "height": 0, "missing": reason}
            if th is not None:
                card.update(uri=th.uri, width=th.width, height=th.height, missing=th.error)
            cards.append(card)
        out.append({"index": gi, "name": r.name, "cards": cards, "scored": int(scored.size), "metrics": declared,
                    "by": by,
                    "left_out": int(scored.size - len(shown)), "missing": sum(c["uri"] is None for c in cards)})
    return out


def _short(text: str) -> str:
    return text if len(text) <= META_CHARS else text[: META_CHARS - 1] + "…"


# ---------------------------------------------------------------- histograms
def histograms(runs: Sequence[ReportRun], scale: str) -> list[dict[str, str]]:
    """One histogram per run, on bins shared by all runs."""
    values = [to_scale(r.clip_scores(), scale) for r in runs]
    bins = plots.shared_bins(values)
    return [{"name": r.name, "uri": plots.histogram(v, bins, name=r.name, xlabel=f"score ({scale})", index=i)}
            for i, (r, v) in enumerate(zip(runs, values))]

"""Printing for people: summary tables (rich) and progress bars (tqdm, stderr, off when not a terminal)."""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

# Off a terminal (pipes, CI logs) rich would assume 80 columns and squeeze the tables.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 120)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_table(summary: dict[str, Any], title: str = "clipgauge score") -> Table:
    """Rows/errors/truncated counts and per-scale statistics as a table."""
    conf = int(round(100 * summary.get("confidence", 0.95)))
    table = Table(
        title=f"{title}: {summary['scored']}/{summary['rows']} scored, {summary['errors']} errors, "
        f"{summary.get('truncated', 0)} truncated prompts",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for col in ("scale", "mean", f"{conf}% CI", "std", "min", "median", "max"):
        table.add_column(col, justify="left" if col == "scale" else "right", no_wrap=True)
    for scale, d in summary.get("scales", {}).items():
        digits = 2 if scale == "torchmetrics" else 4
        ci = f"[{_fmt(d['ci_low'], digits)}, {_fmt(d['ci_high'], digits)}]"
        table.add_row(
            scale, _fmt(d["mean"], digits), ci, _fmt(d["std"], digits), _fmt(d["min"], digits),
            _fmt(d["median"], digits), _fmt(d["max"], digits),
        )
    for name in summarized_columns(summary):
        d = summary[name]
        table.add_row(
            name, _fmt(d["mean"]), f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]", _fmt(d["std"]),
            _fmt(d["min"]), _fmt(d["median"]), _fmt(d["max"]),
        )
    counts = (summary.get("language") or {}).get("counts")
    if counts:  # the language metric: rows per prompt language
        table.caption = "prompt languages: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        table.caption_justify = "left"
    split = [f"{name}: {d['rows_split']} long prompts split into pieces, |{name}_cosine - cosine| on them: mean "
             f"{_fmt(d['mean_abs_shift'])}, max {_fmt(d['max_abs_shift'])}" for name in ("chunks_mean", "chunks_max")
             if isinstance(d := summary.get(name), dict) and "rows_split" in d]
    if split:  # clip_chunks (--long-prompt chunks-mean|chunks-max)
        table.caption = "\n".join([table.caption, *split] if table.caption else split)
        table.caption_justify = "left"
    corr = correlation_line(summary)
    if corr:  # several metrics: how far they rank the images alike
        table.caption = "\n".join([table.caption, corr] if table.caption else [corr])
        table.caption_justify = "left"
    return table


def correlation_line(summary: dict[str, Any]) -> str | None:
    """The summary's Spearman correlations between metrics as one line (ρ in [-1, 1], n rows with both
    values), e.g. ``Spearman ρ between metrics: cosine~aesthetic +0.021 (n=16)``; None without them."""
    pairs = (summary.get("correlations") or {}).get("pairs") or []
    if not pairs:
        return None
    return "Spearman ρ between metrics: " + ", ".join(
        f"{p['a']}~{p['b']} {_signed(p.get('rho'))} (n={p.get('n', 0)})" for p in pairs)


def _signed(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:+.3f}"


def summarized_columns(summary: dict[str, Any]) -> list[str]:
    """The metric columns the summary describes (its ``columns`` declarations, in order), besides the scales.

    Summaries written before metrics declared their columns name ``clip_i``, ``ref_cosine`` and ``refclip_s``.
    """
    declared = summary.get("columns")
    names = ([c["name"] for c in declared if c.get("summarize")] if declared is not None
             else ["clip_i", "ref_cosine", "refclip_s"])
    return [n for n in names if isinstance(summary.get(n), dict) and "mean" in summary[n]]


@contextmanager
def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr (disabled when stderr is not a terminal); yields an ``update(n)`` function."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
    try:
        yield bar.update
    finally:
        bar.close()

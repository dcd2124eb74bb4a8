"""``clipgauge filter``: keep the rows of a dataset whose image matches its caption well enough."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..sinks.filter_run import filter_results
from ..stats.compare import score_digits
from ..stats.filtering import FilterResult
from .evalio import check_json_target, emit_json, fmt, json_option, resolve_score, say, score_options
from .output import stdout


@click.command(name="filter")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--min-score", type=float, default=None, metavar="X",
              help="Keep rows scoring ≥ X in --scale (LAION-5B: cosine 0.28 with OpenAI ViT-B/32); where lower "
                   "is better (--scale angle, in degrees), rows scoring ≤ X.")
@click.option("--top-fraction", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="F",
              help="Keep the best-scoring fraction F of the scored rows (DataComp: 0.3).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Kept rows: a results file (.jsonl, .csv, .tsv, .parquet or another registered format), a "
                   "folder of Parquet parts, or WebDataset tars (kept.tar, kept/%05d.tar; from a results folder).")
@click.option("--dropped", type=click.Path(path_type=Path), help="Also write the rows not kept here.")
@score_options
@json_option
def filter_command(results: Path, min_score: float | None, top_fraction: float | None, out: Path,
                   dropped: Path | None, scale: str, column: str | None, metric: str | None,
                   json_out: str | None) -> None:
    """Filter a scored dataset by CLIP score: a threshold (--min-score) or the top fraction (--top-fraction).

    RESULTS is a file or folder written by 'clipgauge score --out'. Kept rows are written unchanged, in input order.
    Rows that could not be scored are never kept and are counted separately. Thresholds depend on the
    CLIP model: 0.28 suits OpenAI ViT-B/32 cosines (LAION-5B), not other models.
    """
    check_json_target(json_out)
    if (min_score is None) == (top_fraction is None):
        raise click.UsageError("give exactly one of --min-score or --top-fraction")
    column, higher = resolve_score(metric, column, results, scale)
    # one streaming filter for a results file or folder, into any registered output: see sinks/filter_run.py
    result = filter_results(results, out, min_score=min_score, top_fraction=top_fraction, scale=scale, column=column,
                            higher_is_better=higher, dropped=dropped)
    doc = result.to_dict()
    doc.update(file=str(results), out=str(out), dropped_out=str(dropped) if dropped else None)
    if emit_json(doc, json_out):
        print_filter(result)
        say(f"wrote {result.n_kept} rows to {out}" + (f" and {result.dropped} to {dropped}" if dropped else ""))


def print_filter(r: FilterResult) -> None:
    digits = score_digits(r.scale, r.column)
    op = "≥" if r.higher_is_better else "≤"
    rule = (f"score {op} {r.min_score:g}" if r.mode == "min-score"
            else f"top {r.top_fraction:.1%} (score {op} {fmt(r.threshold, digits)})")
    table = Table(title=f"filter: {rule} ({r.column or r.scale})", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("rows", "kept", "dropped", "below threshold", "unscored", "kept %"):
        table.add_column(col, justify="right", no_wrap=True)
    pct = f"{r.n_kept / r.rows:.1%}" if r.rows else "-"
    table.add_row(str(r.rows), str(r.n_kept), str(r.dropped), str(r.dropped_low), str(r.unscored), pct)
    stdout.print(table)

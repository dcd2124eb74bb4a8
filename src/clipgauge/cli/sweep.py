"""``clipgauge sweep``: the score as a function of a numeric setting (CFG scale, steps, checkpoint)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..sinks import read_results
from ..sinks.sweep_files import plot_sweep, write_sweep_csv
from ..stats.compare import score_digits
from ..stats.records import parse_columns, require_columns
from ..stats.sweep import Sweep, display_value, sweep_table
from .evalio import check_json_target, emit_json, fmt, json_option, resolve_score, say, score_options
from .output import stderr, stdout


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--param", required=True, metavar="COLUMN", help="The numeric column swept (e.g. cfg, steps).")
@click.option("--group-by", default=None, metavar="COLS",
              help="Average each group's images per value first and bootstrap over groups (e.g. prompt_id).")
@click.option("--out-dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Write sweep_PARAM.csv and sweep_PARAM.png there.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the intervals.")
@score_options
@json_option
def sweep(results: Path, param: str, group_by: str | None, out_dir: Path | None, confidence: float, scale: str,
          column: str | None, metric: str | None, json_out: str | None) -> None:
    """Mean score with a CI for each value of a numeric column, and where it peaks.

    RESULTS is a file written by 'clipgauge score --out' whose rows carry the setting (e.g. a 'cfg' column).
    Reports per value: images, n, mean, CI; the value with the highest mean, and the smallest value whose
    mean lies within the peak's CI. With --group-by prompt_id, each prompt counts once per value (its images
    are averaged) and the CI is over prompts. Rows without a numeric value or a score are counted, not used.
    """
    check_json_target(json_out)
    records = read_results(results)
    groups = parse_columns(group_by) if group_by else None
    require_columns(records, groups or (), str(results))
    column, higher = resolve_score(metric, column, results, scale)
    result = sweep_table(records, param, group_by=groups, scale=scale, column=column, confidence=confidence,
                         higher_is_better=higher)
    files = {}
    if out_dir is not None:
        stem = "sweep_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", param) or "param")
        files["csv"] = str(write_sweep_csv(result, out_dir / f"{stem}.csv"))
        try:
            files["png"] = str(plot_sweep(result, out_dir / f"{stem}.png"))
        except ImportError:
            stderr.print("clipgauge: matplotlib is not installed, so no plot was drawn "
                         "(pip install matplotlib, or 'clipgauge[report]')", markup=False, highlight=False)
    doc = result.to_dict()
    doc.update(file=str(results), files=files)
    if emit_json(doc, json_out):
        print_sweep(result)
        for path in files.values():
            say(f"wrote {path}")


def print_sweep(s: Sweep) -> None:
    digits = score_digits(s.scale, s.column)
    conf = f"{round(100 * s.confidence)}% CI"
    per = f"per {','.join(s.group_by)}" if s.group_by else "per image"
    table = Table(title=f"score vs {s.param} ({s.column or s.scale}; CI {per})", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in (s.param, "images", "n", "mean", conf, ""):
        table.add_column(col, justify="left" if col == "" else "right", no_wrap=True)
    for row in s.table():
        mark = "peak" if row["is_peak"] else ("within peak CI" if row["within_peak_ci"] else "")
        table.add_row(str(row["value"]), str(row["rows"]), str(row["n"]), fmt(row["mean"], digits),
                      f"[{fmt(row['ci_low'], digits)}, {fmt(row['ci_high'], digits)}]", mark)
    stdout.print(table)
    if s.rows:
        say(f"peak: {s.param} = {display_value(s.peak_value)} (mean {fmt(s.peak_mean, digits)}, "
            f"{conf} [{fmt(s.peak_ci_low, digits)}, {fmt(s.peak_ci_high, digits)}]); smallest {s.param} within "
            f"the peak's CI: {display_value(s.plateau_value)}")
    skipped = [f"{n} {what}" for n, what in ((s.unscored, "unscored rows"), (s.no_value, f"rows without a numeric "
               f"{s.param}"), (s.no_group, "rows without a group value")) if n]
    if skipped:
        say(f"not used: {', '.join(skipped)}")

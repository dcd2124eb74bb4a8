"""``clipgauge report``: results files → one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..scoring.scales import SCALES
from .evalio import check_json_target, emit_json, json_option, say
from .output import stdout


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="The HTML file to write.")
@click.option("--title", default="clipgauge report", show_default=True, help="Page title.")
@click.option("--scale", type=click.Choice(SCALES), default=None,
              help="Scale of the scores shown [default: the runs' own scale when they agree, else cosine].")
@click.option("--sweep-param", metavar="COLUMN",
              help="Draw sweep curves: mean score per value of this numeric column (e.g. cfg).")
@click.option("--key", metavar="COLUMNS",
              help="Columns that pair rows across runs for the comparison, e.g. prompt_id,seed "
                   "[default: prompt_id, prompt_id,seed, prompt or prompt,seed: the first that identifies rows].")
@click.option("--category", "category_column", default="category", show_default=True, metavar="COLUMN",
              help="Column for the per-category bars (skipped when no run has it).")
@click.option("--max-images", type=click.IntRange(min=0), default=200, show_default=True,
              help="Images in each run's grid (worst first); the page says how many were left out.")
@click.option("--thumb-size", type=click.IntRange(16, 1024), default=160, show_default=True,
              help="Thumbnail size in pixels (longest side).")
@click.option("--image-root", type=click.Path(path_type=Path, file_okay=False),
              help="Folder that relative image paths are relative to [default: the results file's folder, "
                   "then the scored manifest's folder].")
@click.option("--distance-to", metavar="REF",
              help="Add a section with CMMD, FD and Vendi of each run (scored with --save-embeddings) against REF: "
                   "reference statistics (.npz from 'clipgauge distance --save-reference') or another run with "
                   "stored embeddings.")
@json_option
def report(results: tuple[Path, ...], out: Path, title: str, scale: str | None, sweep_param: str | None,
           key: str | None, category_column: str, max_images: int, thumb_size: int, image_root: Path | None,
           distance_to: str | None, json_out: str | None) -> None:
    """Write an HTML report of one or more results files (from 'clipgauge score --out').

    One self-contained file that opens offline: summary and comparison tables, a score histogram per run,
    per-category bars, sweep curves, per-prompt diversity and (with --distance-to) distribution distances,
    the rows that could not be scored, and each run's images sorted worst
    first with prompt, score and truncation flag (thumbnails embedded). Prints what was written per run
    (rows, scored, errors, images shown and left out), or that as JSON with --json.
    """
    check_json_target(json_out)
    try:
        from ..report import ReportOptions, build_report
        from ..stats.records import parse_columns
    except ImportError as exc:
        raise UsageError(f"the report needs the 'report' extra ({exc.name} is missing): "
                         "pip install 'clipgauge[report]'") from None
    options = ReportOptions(title=title, scale=scale, sweep_param=sweep_param,
                            key=parse_columns(key) if key is not None else None, category_column=category_column,
                            max_images=max_images, thumb_size=thumb_size, distance_to=distance_to)
    result = build_report(results, out, options, image_root=image_root)
    if not emit_json(result.to_dict(), json_out):
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"clipgauge report: {result.out} ({_size(result.bytes)}, scale {result.scale})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("run", "rows", "scored", "errors", "truncated", "mean", "images shown", "left out", "missing"):
        table.add_column(col, justify="left" if col == "run" else "right", no_wrap=col != "run")
    digits = 2 if result.scale == "torchmetrics" else 4
    for r in result.runs:
        mean = "-" if r["mean"] != r["mean"] else f"{r['mean']:.{digits}f}"
        if r["mean_of"] != result.scale:  # a run without the clip score: its first metric's mean
            mean = f"{mean} {r['mean_of']}" if mean != "-" else mean
        table.add_row(r["name"], str(r["rows"]), str(r["scored"]), str(r["errors"]), str(r["truncated"]), mean,
                      str(r["images_shown"]), str(r["images_left_out"]), str(r["images_missing"]))
    stdout.print(table)
    say(f"sections: {', '.join(result.sections)}")
    for w in result.warnings:
        say(f"warning: {w}")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"

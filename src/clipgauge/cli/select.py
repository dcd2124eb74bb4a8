"""``clipgauge select``: best-of-N — keep the best-scoring images of each prompt."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from ..atomic import AtomicFile, writing
from ..errors import UsageError
from ..paths import resolve_path
from ..sinks import read_results, write_results
from ..sinks.results import results_format
from ..stats.compare import score_digits
from ..stats.records import parse_columns, require_columns
from ..stats.select import SELECT_COLUMNS, Selection, select_best
from .evalio import check_json_target, emit_json, fmt, json_option, resolve_score, say, score_options
from .output import stdout


@click.command(name="select")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--group-by", default="prompt_id", show_default=True, metavar="COLS",
              help="Comma-separated columns whose rows compete (e.g. prompt_id, or prompt_id,model).")
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True, help="Images kept per group.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the chosen rows (.jsonl/.csv/.tsv/.parquet) with rank, margin and group_n.")
@click.option("--copy-to", type=click.Path(path_type=Path), metavar="DIR",
              help="Copy the chosen images into DIR; --out then points at the copies.")
@click.option("--show", type=click.IntRange(min=0), default=20, show_default=True,
              help="Groups listed in the table (all are in --out and --json).")
@click.option("--floor", "floors", multiple=True, metavar="METRIC>=VALUE",
              help="Choose only among rows whose metric (or column) is at least VALUE, e.g. clip>=0.25 to pick the "
                   "best aesthetic image among those that follow the prompt (repeatable).")
@score_options
@json_option
def select(results: Path, group_by: str, top: int, out: Path | None, copy_to: Path | None, show: int, scale: str,
           column: str | None, metric: str | None, floors: tuple[str, ...], json_out: str | None) -> None:
    """Best-of-N: keep the --top best-scoring images of every group (by default, of every prompt).

    RESULTS is a file written by 'clipgauge score --out'. For each chosen image: its score and its margin
    to the next-ranked image of the group. Per group: the mean score (what one random image scores) and
    the max (best-of-N); overall: how much choosing gains on average, with a bootstrap CI over groups.
    Rows that could not be scored are never chosen and are counted.
    """
    check_json_target(json_out)
    if out is not None:
        results_format(out)
    records = read_results(results)
    keys = parse_columns(group_by)
    require_columns(records, keys, str(results))
    column, higher = resolve_score(metric, column, results, scale)
    sel = select_best(records, group_by=keys, top=top, scale=scale, column=column, higher_is_better=higher,
                      floors=[parse_floor(f, results) for f in floors])
    chosen = sel.chosen_records(records)
    copied = 0
    if copy_to is not None:
        copied = copy_images(chosen, base=results.parent, dest=copy_to, out_dir=(out or results).parent)
    if out is not None:
        columns = list(dict.fromkeys([c for r in records for c in r] + list(SELECT_COLUMNS)))
        write_results(out, chosen, columns)
    doc = sel.to_dict()
    doc.update(file=str(results), out=str(out) if out else None, copied_to=str(copy_to) if copy_to else None)
    if emit_json(doc, json_out):
        print_selection(sel, records, show)
        if copy_to is not None:
            say(f"copied {copied} images to {copy_to}")
        if out is not None:
            say(f"wrote {len(chosen)} rows to {out}")


def parse_floor(text: str, results: Path) -> tuple[str, float]:
    """``METRIC>=VALUE`` → (column, VALUE); the metric resolved as ``--metric`` is (``clip`` is the cosine)."""
    name, sep, value = text.partition(">=")
    try:
        minimum = float(value)
    except ValueError:
        minimum = None
    if not sep or not name.strip() or minimum is None:
        raise UsageError(f"a floor is METRIC>=VALUE, e.g. clip>=0.25 (got '{text}')")
    column, _ = resolve_score(name.strip(), None, results)
    return column or "cosine", minimum


def copy_images(chosen: list[dict[str, Any]], *, base: Path, dest: Path, out_dir: Path) -> int:
    """Copy each chosen row's ``image`` (relative paths resolved against *base*) into *dest* and point the row
    at the copy (relative to *out_dir*, where the results file with these rows is written).

    Name clashes get a numeric suffix; a file already there with the same content is reused. Raises
    :class:`UsageError` if an image is missing, before copying anything. Returns the number of images."""
    if chosen and not any("image" in r for r in chosen):
        raise UsageError("--copy-to needs an 'image' column in the results")
    sources = [resolve_path(str(r["image"]), base) if r.get("image") not in (None, "") else None for r in chosen]
    missing = [str(s) for s in sources if s is not None and not s.is_file()]
    if missing:
        raise UsageError(f"{len(missing)} chosen images not found (first: {missing[0]})")
    with writing(dest):
        dest.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    n = 0
    for row, src in zip(chosen, sources):
        if src is None:
            continue
        name, k = src.name, 1
        while name.lower() in used or (dest / name).exists() and not _same_content(dest / name, src):
            name = f"{src.stem}_{k}{src.suffix}"
            k += 1
        used.add(name.lower())
        target = dest / name
        if not target.exists():
            with AtomicFile(target) as copy:  # whole or not at all; OutputError (one line) on a full disk …
                shutil.copy2(src, copy.tmp)
        n += 1
        row["image"] = os.path.relpath(target.resolve(), out_dir.resolve())
    return n


def _same_content(a: Path, b: Path) -> bool:
    """Whether *a* already holds *b* (the same file, or a copy left by an earlier run)."""
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def print_selection(sel: Selection, records: list[dict[str, Any]], show: int) -> None:
    digits = score_digits(sel.scale, sel.column)
    unit = sel.column or sel.scale
    n_groups = len(sel.groups)
    mean_n = sum(g.n for g in sel.groups) / n_groups if n_groups else float("nan")
    summary = Table(title=f"best-of-N over {n_groups} groups ({','.join(sel.group_by)}), {unit}",
                    title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("rows", "errors", "images per group", "expected (group mean)", "best-of-N (group max)",
                "gain", "95% CI of gain"):
        summary.add_column(col, justify="right", no_wrap=True)
    summary.add_row(str(sel.rows), str(sel.errors), fmt(mean_n, 1), fmt(sel.expected, digits), fmt(sel.best, digits),
                    fmt(sel.gain, digits, True),
                    f"[{fmt(sel.gain_ci_low, digits, True)}, {fmt(sel.gain_ci_high, digits, True)}]")
    stdout.print(summary)
    skipped = [text for n, text in ((sel.no_key, f"{sel.no_key} rows without a value in {','.join(sel.group_by)}"),
                                    (sel.empty_groups, f"{sel.empty_groups} groups where no image could be scored"))
               if n]
    if skipped:
        say(f"nothing chosen from: {'; '.join(skipped)}")
    if not show:
        return
    table = Table(title=f"chosen (top {sel.top})", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("group", "rank", "score", "margin", "group mean", "group max", "n", "image"):
        table.add_column(col, justify="left" if col in ("group", "image") else "right", no_wrap=col != "image")
    for g in sel.groups[:show]:
        if not g.chosen:
            table.add_row("/".join(g.key), "-", "-", "-", "-", "-", str(g.n), "(nothing scored)")
        for rank, (i, s, m) in enumerate(zip(g.chosen, g.chosen_scores, g.margins), start=1):
            table.add_row("/".join(g.key), str(rank), fmt(s, digits), fmt(m, digits), fmt(g.mean, digits),
                          fmt(g.max, digits), str(g.n), str(records[i].get("image", "")))
    stdout.print(table)
    if n_groups > show:
        say(f"… {n_groups - show} more groups (all in --out / --json)")

"""Options and input/output shared by the evaluation commands (prompts, compare, select, sweep, filter).

``--json`` takes an optional path: alone (or ``--json -``) it prints the JSON document instead of the
table; ``--json out.json`` writes the document to that file and still prints the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..atomic import write_atomic
from ..errors import UsageError
from ..scoring.scales import SCALES, higher_is_better
from ..sinks.summary import json_safe
from .output import stdout

F = Callable[..., Any]


def json_option(f: F) -> F:
    return click.option(
        "--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="[PATH]",
        help="Print JSON instead of the table; with a PATH (ending in .json), write it there and print the table.",
    )(f)


def score_options(f: F) -> F:
    f = click.option("--metric", "metric", default=None, metavar="NAME",
                     help="Use this metric's score (as its results summary declares it, with its better "
                          "direction): clip (default), aesthetic, pickscore, … or a declared column.")(f)
    f = click.option("--column", default=None, metavar="NAME",
                     help="Use this numeric column as the score, as is (default: the 'cosine' column in --scale).")(f)
    return click.option("--scale", type=click.Choice(SCALES), default="cosine", show_default=True,
                        help="Scale of the scores: cosine, torchmetrics (100 × cosine), clip-s "
                             "(2.5 × max(cosine, 0)) or angle (degrees(arccos(cosine)), lower is better); computed "
                             "from the 'cosine' column.")(f)


def resolve_score(metric: str | None, column: str | None, results: Any,
                  scale: str = "cosine") -> tuple[str | None, bool]:
    """``(column, higher_is_better)`` of the score to use: ``--column`` as is (higher is better), or ``--metric``
    as the summaries beside *results* (one path or several) declare it; the clip cosine by default, whose
    direction is that of *scale* (lower is better for ``angle``)."""
    from ..sinks.summary import read_summary
    from ..stats.records import metric_column

    if metric is None:
        return column, True if column is not None else higher_is_better(scale)
    if column is not None:
        raise UsageError("give --metric or --column, not both")
    paths = [results] if isinstance(results, (str, Path)) else list(results)
    found, higher = metric_column(metric, [read_summary(p) for p in paths])
    return found, higher if found is not None else higher_is_better(scale)


def check_json_target(target: str | None) -> None:
    """Refuse a ``--json`` value that is not ``-`` or a ``.json`` path (e.g. a results file swallowed by it)."""
    if target not in (None, "-") and not target.lower().endswith(".json"):
        raise UsageError(
            f"--json takes an output path ending in .json, got '{target}' (to print JSON, put --json last "
            f"or write --json -)"
        )


def emit_json(document: dict[str, Any], target: str | None) -> bool:
    """Write *document* to *target* (``-``: stdout). Returns True when the table should still be printed."""
    if target is None:
        return True
    text = json.dumps(json_safe(document), indent=2, ensure_ascii=False, default=str)
    if target == "-":
        click.echo(text)
        return False
    write_atomic(target, text + "\n")  # OutputError (one line) when it cannot be written
    return True


def fmt(value: Any, digits: int = 4, signed: bool = False) -> str:
    """A number for a table: ``-`` for None/NaN, ``∞`` for infinity, fixed decimals for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def say(text: str) -> None:
    """A plain line on stdout (no rich markup or highlighting)."""
    stdout.print(text, markup=False, highlight=False)

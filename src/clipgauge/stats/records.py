"""Values out of results records (the dicts :func:`clipgauge.sinks.read_results` returns).

Results files come in several formats: JSONL and Parquet keep numbers as numbers, CSV/TSV give every
value back as a string. These helpers read scores, numeric parameters and matching keys the same way
from all of them, so that a run saved as CSV compares with one saved as JSONL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..scoring.scales import check_scale, to_scale

Record = Mapping[str, Any]

#: the column the score scales (``--scale``) convert: the ``clip`` metric's primary column
#: (:meth:`~clipgauge.metrics.clip.ClipScore.primary`), read by default where no metric or column is named
SCALED_COLUMN = "cosine"

_MISSING = ("", "none", "null", "nan", "na")


def as_float(value: Any) -> float:
    """*value* as a float; NaN for None, empty, ``null``/``NaN`` text, booleans or anything non-numeric."""
    if value is None or isinstance(value, bool):
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _MISSING:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def has_error(record: Record) -> bool:
    """Whether ``score`` could not score this row (its ``error`` field is set)."""
    err = record.get("error")
    if err is None or isinstance(err, bool) and not err:
        return False
    return not (isinstance(err, str) and err.strip().lower() in _MISSING)


def scores(records: Sequence[Record], *, scale: str = "cosine", column: str | None = None) -> np.ndarray:
    """Per-row scores as float64, NaN where a row has an error or no value.

    By default the raw ``cosine`` column (:data:`SCALED_COLUMN`, in [-1, 1]) converted to *scale* (``cosine``,
    ``torchmetrics`` = 100 × cosine, ``clip-s`` = 2.5 × max(cosine, 0)), so runs scored in different ``--scale``
    settings compare on one scale. With *column*, that column's values are used as they are (*scale* must then be
    ``cosine``, i.e. no conversion). Raises :class:`UsageError` when the column is absent from every row.
    """
    check_scale(scale)
    name = column or SCALED_COLUMN
    if column is not None and scale != "cosine":
        raise UsageError("a score column's values are used as they are; they cannot be converted to another scale",
                         cli="--column uses a column's values as they are; it cannot be combined with --scale")
    if records and not any(name in r for r in records):
        hint = "" if column else " (is this a results file written by 'clipgauge score'?)"
        raise UsageError(f"results have no '{name}' column{hint}")
    values = np.array([math.nan if has_error(r) else as_float(r.get(name)) for r in records], dtype=np.float64)
    return values if column is not None else to_scale(values, scale)


def primary_column(declared: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The declaration of the primary column among one metric's *declared* columns (as a summary writes them,
    :meth:`~clipgauge.metrics.Metric.declarations`): the one marked ``primary``, else (a summary written before
    the mark) the first summarized float column. None when there is none."""
    return (next((c for c in declared if c.get("primary")), None)
            or next((c for c in declared if c.get("summarize") and c.get("type") == "float64"), None))


def metric_column(name: str, summaries: Sequence[Mapping[str, Any] | None]) -> tuple[str | None, bool]:
    """The column that holds metric *name* in results with these *summaries*, and whether higher is better.

    A metric's column is its primary one, as its summary declares it (:func:`primary_column`); a declared column
    may also be named itself. The primary column of ``clip`` is :data:`SCALED_COLUMN`, given as None (read in
    the chosen scale), also where no summary says so. :class:`UsageError` when no summary declares it, or when it
    is not a score (no direction declared).
    """
    declared = [c for s in summaries if s for c in (s.get("columns") or [])]
    column = primary_column([c for c in declared if c.get("metric") == name])
    if column is None:
        column = next((c for c in declared if c.get("name") == name), None)
    if column is None and name == "clip":  # results without a summary: the clip metric's primary column
        column = {"name": SCALED_COLUMN, "higher_is_better": True}
    if column is None:
        known = sorted({str(c.get("metric")) for c in declared if c.get("metric")} | {"clip"})
        raise UsageError(f"no results summary declares a metric or column '{name}' (declared: {', '.join(known)})",
                         cli=f"no results summary declares a metric or column '{name}' (declared: "
                             f"{', '.join(known)}); --column NAME reads any numeric column as it is")
    better = column.get("higher_is_better")
    if better is None:
        raise UsageError(f"'{column['name']}' has no better direction (its metric declares none): it is not a score")
    return (None if column["name"] == SCALED_COLUMN else str(column["name"])), bool(better)


def key_value(value: Any) -> str | None:
    """A matching key as text; numbers are normalised so that ``7``, ``7.0`` and ``"7"`` all give ``"7"``
    (CSV files return text, JSONL numbers). None when the value is missing."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return str(int(text))
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return text
    elif isinstance(value, (float, np.floating)):
        number = float(value)
    else:
        return str(value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        return str(number)
    return str(int(number)) if number.is_integer() else repr(number)


def record_key(record: Record, columns: Sequence[str]) -> tuple[str, ...] | None:
    """The matching key of *record* over *columns*; None when any of them is missing."""
    key = tuple(key_value(record.get(c)) for c in columns)
    return None if any(k is None for k in key) else key  # type: ignore[return-value]


def parse_columns(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"prompt_id,seed"`` (or a list) → ``("prompt_id", "seed")``; :class:`UsageError` if empty."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    if not parts:
        raise UsageError("no column names given")
    return tuple(parts)


def require_columns(records: Sequence[Record], columns: Iterable[str], what: str) -> None:
    """Raise :class:`UsageError` if some of *columns* appear in no record of *what*."""
    present: dict[str, None] = {}
    for r in records:
        for k in r:
            present.setdefault(k, None)
    missing = [c for c in columns if c not in present]
    if missing:
        raise UsageError(
            f"{what} has no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(present) or 'none'})"
        )


def run_names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names for results files: stems, or with as many parent folders as it takes."""
    paths = [Path(p) for p in paths]
    candidates = [[p.stem for p in paths], [p.name for p in paths]]
    candidates += [["/".join(p.resolve().parts[-depth:]) for p in paths] for depth in range(2, 6)]
    for names in candidates:
        if len(set(names)) == len(names):
            return names
    return [f"{n} #{i + 1}" for i, n in enumerate(candidates[1])]  # the same file given twice

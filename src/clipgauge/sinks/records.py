"""Result rows as dicts ↔ Arrow tables: what :func:`~clipgauge.sinks.write_results` hands to a sink, and how a
results file read as dicts becomes the Arrow table that filtering and the sinks take."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def clean_value(value: Any) -> Any:
    """A value as results files hold it: NaN → None, numpy scalars → Python values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return clean_value(value.item())
    return value


def records_table(records: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> Any:
    """A ``pyarrow.Table`` of *records* with *columns* in that order (default: every key, in order of first
    appearance); a missing key is null, NaN is null. A column of mixed types (7 and "7") keeps every value as text."""
    import pyarrow as pa

    rows = list(records)
    if columns is None:
        columns = list(dict.fromkeys(c for r in rows for c in r))
    arrays = {}
    for c in columns:
        values = [clean_value(r.get(c)) for r in rows]
        try:
            arrays[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[c] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(arrays) if arrays else _empty_rows(len(rows))


def _empty_rows(n: int) -> Any:
    """A table of *n* rows without columns (records that are all ``{}``)."""
    import pyarrow as pa

    return pa.table({"_": pa.nulls(n)}).drop_columns(["_"])

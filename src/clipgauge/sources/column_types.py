"""Column types of streamed records, as one ``pa.array`` over all of a column's values would infer them.

A manifest's carried columns are typed like ``pa.array(values).type`` (``string`` where that raises: values
that do not mix, or a struct without fields, which Parquet cannot store); here that is found chunk by chunk, in
memory for one chunk of rows (see :class:`ColumnTypes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: rows per inference chunk
TYPE_CHUNK_ROWS = 8192


def infer_arrow_types(columns: Iterable[str], records: Iterable[dict[str, Any]],
                      chunk_rows: int | None = None) -> dict[str, Any]:
    """Column → ``pyarrow`` type of ``[r.get(column) for r in records]``, in memory for one chunk of rows.

    The same type as ``pa.array(all_values).type`` (``pa.string()`` where that raises: mixed or
    incompatible values); see :class:`ColumnTypes`.
    """
    acc = ColumnTypes(chunk_rows)
    for rec in records:
        acc.add(rec)
    return acc.result(columns)


class ColumnTypes:
    """Streaming column types: feed records (dicts) with :meth:`add`, read the types with :meth:`result`.

    Holds one chunk of records at a time. Each column's chunk is inferred behind an example value of the
    column's type so far (``pa.array([example] + chunk)``), so pyarrow sees what it would have seen in one
    pass over every value — ints then floats give ``double``, lists and structs widen, a bool or a text
    first fixes the type — and every value is converted to the result. Nulls (and absent keys) decide
    nothing. One known difference from a single ``pa.array``: a chunk that fails is not rescued by later
    values — possible only inside lists: ``[[1], [True], [1.5]]`` is ``list<double>`` in one pass, but
    ``string`` here when ``[1]`` and ``[True]`` fall in a chunk without the float.
    """

    def __init__(self, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows or TYPE_CHUNK_ROWS
        self.columns: dict[str, _ColumnType] = {}
        self.chunk: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.chunk.append(record)
        if len(self.chunk) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        chunk, self.chunk = self.chunk, []
        keys: dict[str, None] = {}
        for r in chunk:
            for k in r:
                if k not in keys:
                    keys[k] = None
        for k in keys:  # a column absent from the chunk is all nulls there: nothing to learn
            col = self.columns.get(k)
            if col is None:
                col = self.columns[k] = _ColumnType()
            col.add([r.get(k) for r in chunk])

    def result(self, columns: Iterable[str]) -> dict[str, Any]:
        """Column → type (``null`` for a column never seen; ``string`` for one whose values do not mix)."""
        import pyarrow as pa

        if self.chunk:
            self.flush()
        return {c: self.columns[c].result() if c in self.columns else pa.null() for c in columns}


_NOTHING = object()


class _ColumnType:
    """The type of one column's values so far, and a Python value of that type (to put in front of a chunk)."""

    def __init__(self) -> None:
        import pyarrow as pa

        self.type = pa.null()
        self.example: Any = _NOTHING
        self.failed = False

    def add(self, values: list[Any]) -> None:
        import pyarrow as pa

        if self.failed:
            return
        try:
            if self.example is _NOTHING and not pa.types.is_null(self.type):
                # no Python value stands for this type: later chunks must give it again (or nulls only)
                t = pa.array(values).type
                if not (pa.types.is_null(t) or t == self.type):
                    self.failed = True
                return
            t = pa.array(values if self.example is _NOTHING else [self.example, *values]).type
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            self.failed = True
            return
        if t != self.type:
            self.type, self.example = t, _example(t)

    def result(self):
        import pyarrow as pa

        return pa.string() if self.failed or _has_empty_struct(self.type) else self.type


def _has_empty_struct(t) -> bool:
    """Whether *t* holds a struct without fields (all ``{}``), which Parquet cannot store: such a column is
    text (``"{}"``)."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_empty_struct(t.value_type)
    return False


def _example(t) -> Any:
    """A Python value that ``pa.array([value])`` infers as *t* (``_NOTHING`` for null or when there is none)."""
    import pyarrow as pa

    try:
        value = _example_value(t)
        if value is not _NOTHING and pa.array([value]).type == t:
            return value
    except Exception:  # noqa: BLE001 - no example: the caller falls back to comparing chunk types
        pass
    return _NOTHING


def _example_value(t) -> Any:
    import datetime
    import decimal

    import pyarrow as pa

    types = pa.types
    if types.is_null(t):
        return _NOTHING
    if types.is_boolean(t):
        return True
    if types.is_integer(t):
        return 0
    if types.is_floating(t):
        return 0.5
    if types.is_string(t) or types.is_large_string(t):
        return ""
    if types.is_binary(t) or types.is_large_binary(t):
        return b""
    if types.is_date(t):
        return datetime.date(2000, 1, 1)
    if types.is_time(t):
        return datetime.time(0)
    if types.is_duration(t):
        return datetime.timedelta(0)
    if types.is_timestamp(t):
        if t.tz is None:
            return datetime.datetime(2000, 1, 1)
        from pyarrow.lib import string_to_tzinfo

        return datetime.datetime(2000, 1, 1, tzinfo=string_to_tzinfo(t.tz))
    if types.is_decimal(t):
        return decimal.Decimal((0, (1,) * max(t.precision, 1), -t.scale))
    if types.is_list(t) or types.is_large_list(t):
        child = _nested_example(t.value_type)
        return _NOTHING if child is _NOTHING else [child]
    if types.is_struct(t):
        out = {}
        for f in t:
            out[f.name] = _nested_example(f.type)
            if out[f.name] is _NOTHING:
                return _NOTHING
        return out
    return _NOTHING


def _nested_example(t) -> Any:
    import pyarrow as pa

    return None if pa.types.is_null(t) else _example_value(t)

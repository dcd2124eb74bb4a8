"""A single results file (``--out r.jsonl|.csv|.tsv|.parquet``, any registered results format) as one more sink over
the sharded run.

While the run goes, its results are committed as Parquet parts in a hidden staging folder beside the file
(``.r.jsonl.clipgauge-run/``, the same resumable layout as a results folder). When every row is scored the
parts are consolidated, in input order, into the file through its format's :class:`~clipgauge.sinks.sink.Sink`
(written to a temporary name and renamed, so the file appears whole or not at all), the summary is written beside
it and the staging folder is removed. Both engines commit to the same staging folder, so every registered format
works with each. A run killed at any point is finished by the same command: the committed parts are kept and only
the rest is scored. So is a run whose results file could not be written (a full disk …): the error names the file
and the cause, and the parts stay.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..sources.shards import ID_COLUMNS
from .faults import run_writing
from .formats import jsonl_bytes, jsonl_lines
from .sharded import list_parts, read_parts
from .sink import open_sink, sink_for

STAGING_SUFFIX = ".clipgauge-run"


def staging_folder(path: str | Path) -> Path:
    """Where the run writing *path* keeps its committed parts: ``DIR/.NAME.clipgauge-run``."""
    p = Path(path)
    return p.with_name(f".{p.name}{STAGING_SUFFIX}")


def consolidate(folder: str | Path, path: str | Path) -> Path:
    """Write every part of the finished run in *folder*, in input order, to the results file *path* (its sink
    chosen by its extension), without the row-id columns, atomically; memory is one part at a time.

    :class:`~clipgauge.errors.OutputError` if *path* cannot be written; the parts in *folder* are kept."""
    path = Path(path)
    sink_for(path)  # an unsupported format: one line before anything is written
    with run_writing(folder, path), open_sink(path, run_schema(folder)) as sink:
        for shard, table in _tables(folder):
            sink.write(table, shard)
    return path


def run_schema(folder: str | Path) -> Any:
    """The Arrow schema of the rows the run in *folder* holds, without the row-id columns (None: no part yet)."""
    import pyarrow.parquet as pq

    first = next(iter(list_parts(folder).values()), None)
    if first is None:
        return None
    schema = pq.read_schema(first)
    for name in ID_COLUMNS:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    return schema


def remove_staging(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _tables(folder: str | Path) -> Iterator[tuple[int, Any]]:
    for shard, table in read_parts(folder):
        yield shard, table.drop_columns([c for c in ID_COLUMNS if c in table.column_names])


__all__ = ["consolidate", "jsonl_bytes", "jsonl_lines", "remove_staging", "run_schema", "staging_folder"]

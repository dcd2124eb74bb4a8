"""Per-row results files, in any registered results format (JSONL, CSV/TSV, Parquet …) chosen by the extension.

Every input row is written, in input order, with its original columns plus ``score`` (in the chosen
scale), ``cosine`` (always the raw cosine), ``truncated`` and ``error``. Files are written to a
temporary name and renamed, so a crash never leaves a half-written results file. The formats are the
registered :class:`~clipgauge.sinks.sink.Sink` classes (:mod:`clipgauge.sinks.formats`); reading goes through
:class:`~clipgauge.sinks.reader.ResultsReader`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..atomic import writing
from .reader import read_results
from .records import clean_value, records_table
from .sink import open_sink, sink_for


def results_format(path: str | Path) -> str:
    """The name of the registered results format of *path* (``jsonl``, ``csv`` …); :class:`UsageError` if none."""
    return sink_for(path).name


def write_results(path: str | Path, records: Iterable[dict[str, Any]], columns: list[str]) -> Path:
    """Write *records* (dicts) with *columns* in that order to *path* through its format's sink, atomically."""
    table = records_table(records, columns)
    with writing(path), open_sink(path, table.schema) as sink:
        sink.write(table)
    return Path(path)


__all__ = ["clean_value", "read_results", "records_table", "results_format", "write_results"]

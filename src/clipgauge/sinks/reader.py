"""One reader of results, for every consumer (report, compare, select, sweep, filter, stats, track, validate …):
a results file of any registered format, or a results folder (``score --out DIR``).

:meth:`ResultsReader.tables` streams Arrow tables (a folder: one per part, in input order; a file: the file);
:meth:`ResultsReader.records` gives every row as a dict. Any fault reading is one :class:`UsageError` line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .sharded import EMBEDDING_COLUMNS, SUCCESS_FILE, list_parts, read_part, read_run
from .sink import sink_for


class ResultsReader:
    """The results at *path*: a results file (format by its extension) or a *complete* results folder.

    :class:`UsageError` (one line) when the file is missing or of no registered format, or the folder is not a
    results folder or its run is unfinished.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: the folder's ``_run.json`` document (None for a file)
        self.run: dict[str, Any] | None = None
        if self.path.is_dir():
            self.run = read_run(self.path)
            if not self.run.get("complete") or not (self.path / SUCCESS_FILE).exists():
                parts = len(list_parts(self.path))
                raise UsageError(f"the run in {self.path} is not finished ({parts} parts so far, the results are not "
                                 "complete): run the same 'clipgauge score' command again to complete it")
            self.format = None
        else:
            self.format = sink_for(self.path)
            if not self.path.is_file():
                raise UsageError(f"results file not found: {self.path}")

    @property
    def is_folder(self) -> bool:
        return self.run is not None

    def tables(self, columns: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:
        """``(part, pyarrow.Table)`` in input order (only *columns* of a folder's parts, when given)."""
        with self._reading():
            if self.is_folder:
                for shard, path in list_parts(self.path).items():
                    yield shard, read_part(path, columns)
            else:
                yield from enumerate(self.format.read(self.path))

    def records(self) -> list[dict[str, Any]]:
        """Every row as a dict, in input order; a folder's rows without the embedding columns."""
        if not self.is_folder:
            with self._reading():
                return self.format.read_records(self.path)
        records: list[dict[str, Any]] = []
        for _, table in self.tables():
            keep = [c for c in table.column_names if c not in EMBEDDING_COLUMNS]
            records.extend(table.select(keep).to_pylist())
        return records

    def column_names(self) -> list[str]:
        """The columns of the results (a folder: those of its first part)."""
        if self.is_folder:
            import pyarrow.parquet as pq

            first = next(iter(list_parts(self.path).values()), None)
            with self._reading():
                return [] if first is None else list(pq.read_schema(first).names)
        return list(next(iter(self.tables()))[1].column_names)

    def _reading(self) -> Any:
        return _OneLine(self.path, "folder" if self.is_folder else "file")


class _OneLine:
    """Any exception but a :class:`UsageError` while reading becomes one :class:`UsageError` line."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None or issubclass(kind, (UsageError, GeneratorExit)) or not issubclass(kind, Exception):
            return
        text = " ".join(str(exc).split())[:200]
        raise UsageError(f"cannot read results {self.what} {self.path}: {text}") from None


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every row of the results file or folder *path* as a dict, in input order (see :class:`ResultsReader`)."""
    return ResultsReader(path).records()

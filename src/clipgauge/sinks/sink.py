"""The sink seam: where Arrow tables of results go, chosen by the output's name.

A :class:`Sink` is opened on a path with the Arrow schema of the rows it will receive, is handed Arrow tables
(:meth:`Sink.write`, in input order, possibly none), and makes its output appear whole on :meth:`Sink.commit`
(written to a temporary name and renamed) or not at all (:meth:`Sink.close` without a commit removes what was
written). A fault while writing raises :class:`~clipgauge.errors.OutputError` naming the file and the cause.

Sinks are registered by the output names they take (:func:`register_sink`): a results file extension such as
``.jsonl``, or a pattern (a folder, ``kept/%05d.tar``). One registry serves ``score --out FILE`` (the run's parts
are consolidated into the file through its sink, whatever the engine), ``filter --out``, ``select``/``prompts
--out`` and :func:`clipgauge.sinks.write_results`. A sink that can also :meth:`Sink.read` its files back is a
*results format*: :class:`~clipgauge.sinks.reader.ResultsReader` (and so ``report``, ``compare``, ``select``,
``sweep``, ``filter``) reads it. A new output format is one module with a :class:`Sink` subclass and
``@register_sink``; see ``docs/extending.md``. The built-in sinks (:mod:`.formats`, :mod:`.filter_outputs`) are
registered when :mod:`clipgauge.sinks` is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UsageError

_SINKS: list[type[Sink]] = []


class Sink:
    """Writes Arrow tables of result rows to one output. Subclasses set :attr:`name` and :attr:`extensions` and
    implement :meth:`write` and :meth:`commit` (and :meth:`abort` when they hold something to release).

    ``path``: the output; ``schema``: the ``pyarrow.Schema`` of the tables to come (None when it is not known,
    e.g. a run of zero rows); ``run``: the ``_run.json`` document of the results folder being read, for sinks that
    reopen the run's input (the WebDataset tar copies each kept row's image), else None.
    """

    #: the format's name, as errors and ``--out`` help name it (``"jsonl"``)
    name: ClassVar[str] = ""
    #: output names it takes, lower case (``(".jsonl", ".ndjson")``); matched against the end of the name
    extensions: ClassVar[tuple[str, ...]] = ()
    #: a results format: one file that :meth:`read` gives back as it was written (score, filter, select --out)
    results_file: ClassVar[bool] = True

    def __init__(self, path: str | Path, schema: Any = None, *, run: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.run = run
        self.committed = False

    @classmethod
    def matches(cls, path: str | Path) -> bool:
        """Whether this sink takes the output *path* (default: its name ends with one of :attr:`extensions`)."""
        name = Path(path).name.lower()
        return any(name.endswith(ext) for ext in cls.extensions)

    def write(self, table: Any, part: int | None = None) -> None:
        """Append the rows of the ``pyarrow.Table`` *table* (*part*: the input part they come from, when the
        input is a results folder; sinks that mirror parts use it)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make the output appear, whole (rename into place); :class:`OutputError` if it cannot."""
        raise NotImplementedError

    def abort(self) -> None:
        """Remove what was written so far (best effort: a second fault must not hide the first)."""

    def close(self) -> None:
        """Release the sink; one that was not committed is aborted, so nothing half-written stays."""
        if not self.committed:
            self.abort()

    @classmethod
    def read(cls, path: Path) -> Iterator[Any]:
        """The ``pyarrow.Table`` (s) of a file this sink wrote, in order (results formats only)."""
        raise UsageError(f"{cls.name} outputs cannot be read back as results")

    @classmethod
    def read_records(cls, path: Path) -> list[dict[str, Any]]:
        """The rows of a file this sink wrote, as dicts (default: the rows of :meth:`read`)."""
        return [row for table in cls.read(path) for row in table.to_pylist()]

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None and not self.committed:
            self.commit()
            self.committed = True
        self.close()


def register_sink(cls: type[Sink]) -> type[Sink]:
    """Register a :class:`Sink` subclass (a class decorator). A later registration of the same name replaces the
    earlier one; names are matched longest extension first, so ``.ndjson.gz`` wins over ``.gz``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _SINKS[:] = [s for s in _SINKS if s.name != cls.name]
    _SINKS.append(cls)
    return cls


def sinks() -> list[type[Sink]]:
    """The registered sinks, in registration order."""
    return list(_SINKS)


def sink_for(path: str | Path, *, results_file: bool = True) -> type[Sink]:
    """The sink taking *path*: with *results_file* (score, select, prompts) only results formats, else any (filter).

    :class:`UsageError` (one line, listing what is registered) when none does."""
    candidates = [s for s in _SINKS if s.results_file or not results_file]
    ranked = sorted(candidates, key=lambda s: -max((len(e) for e in s.extensions), default=0))
    for sink in ranked:
        if sink.matches(path):
            return sink
    suffix = Path(path).suffix or str(path)
    raise UsageError(f"unsupported output format '{suffix}' (use {describe(results_file=results_file)})")


def results_extensions() -> list[str]:
    """The file extensions of every registered results format (``.jsonl``, ``.csv`` …)."""
    return [e for s in sinks() if s.results_file for e in s.extensions]


def describe(*, results_file: bool = True) -> str:
    """The accepted output names, for help and errors: ``.jsonl, .ndjson, .csv, .tsv or .parquet``."""
    names = [e for s in sinks() if s.results_file or not results_file for e in (s.extensions or (s.name,))]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def open_sink(path: str | Path, schema: Any = None, *, results_file: bool = True,
              run: dict[str, Any] | None = None) -> Sink:
    """Open the sink registered for *path* (see :func:`sink_for`)."""
    return sink_for(path, results_file=results_file)(path, schema, run=run)

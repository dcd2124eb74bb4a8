"""Faults while writing a run's outputs: one :class:`~clipgauge.errors.OutputError` naming the file and the cause,
and saying what happens next (the committed parts are kept and the same command resumes).

Kept apart from :mod:`clipgauge.sinks.sharded` (which writes the parts) so that the results-file writer and the run
driver give the same hint.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..atomic import writing
from ..errors import OutputError

_PART = re.compile(r"^part-\d+\.parquet$")


@contextmanager
def run_writing(folder: str | Path, path: str | Path) -> Iterator[None]:
    """A write of *path* for the run kept in *folder*: an :class:`OSError` in the block becomes an
    :class:`OutputError` naming *path* and the cause, with :func:`resume_hint` (an :class:`OutputError` from a nested
    write keeps its path and gains the hint)."""
    try:
        with writing(path):
            yield
    except OutputError as exc:
        exc.with_hint(resume_hint(folder))
        raise


def resume_hint(folder: str | Path) -> str:
    """What a rerun of the same command does with the run kept in *folder*, now."""
    folder = Path(folder)
    if not folder.is_dir():
        return "the run's folder and its parts are gone: the same command starts the run over"
    try:
        kept = any(_PART.match(e.name) for e in os.scandir(folder))
    except OSError:
        kept = False
    if kept:
        return "committed parts are kept; run the same command again to resume"
    return "no part is committed yet; run the same command again once the output can be written"

"""Streaming row sources: the abstraction every large input (WebDataset, Parquet, HF datasets) implements.

A source is an ordered list of *units* (tar files, Parquet files, one dataset). Iterating it yields
:class:`SourceRow` objects in input order, each with a stable global ``index`` (0-based position in the
whole input; the results' ``row_id``) and a ``source`` string naming where it came from
(``UNIT:KEY`` or ``UNIT:ROW``). Nothing is loaded into memory beyond the current row (or small batch).

Rows that the caller does not want (a :class:`Selection` says which) are yielded as *placeholders*
(``skipped=True``) without their image bytes being read, so a resumed run can walk past finished work
cheaply; with per-unit row counts known, whole units are jumped over.

A broken input never stops the stream: a missing or corrupt file gives rows with ``error`` set. The
number of rows a unit yields never depends on the selection, so row indices are the same in every run.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import resolve_path

#: Columns the sharded outputs add in front of every row (an input column of the same name is replaced).
ID_COLUMNS = ("row_id", "row_source")


@dataclass
class SourceRow:
    """One input row: carried ``fields``, the image (bytes, or a path: a ``Path``, or its text as
    :func:`clipgauge.paths.path_text` gives it), the prompt, or why it cannot be scored.

    ``skipped`` rows are placeholders for rows outside the selection: only ``index`` is meaningful.
    """

    index: int
    source: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    image: bytes | str | Path | None = None
    prompt: Any = None
    error: str | None = None
    skipped: bool = False


@dataclass(frozen=True)
class Selection:
    """Which rows to read, by shard (shard *k* = rows ``[k·size, (k+1)·size)``).

    The rows of ``shards`` (``None``: every shard) that are not in ``exclude``.
    """

    shard_size: int
    shards: frozenset[int] | None = None
    exclude: frozenset[int] = frozenset()

    def wants(self, index: int) -> bool:
        k = index // self.shard_size
        return (self.shards is None or k in self.shards) and k not in self.exclude

    def wants_range(self, start: int, stop: int) -> bool:
        """Whether any row in ``[start, stop)`` is selected."""
        if stop <= start:
            return False
        first, last = start // self.shard_size, (stop - 1) // self.shard_size
        if self.shards is None and last - first + 1 > len(self.exclude):
            return True  # more shards in the range than excluded ones
        if self.shards is not None and last - first + 1 > len(self.shards):
            return any(first <= k <= last and k not in self.exclude for k in self.shards)
        return any(self.wants(k * self.shard_size) for k in range(first, last + 1))


ALL = Selection(1)


class RowSource(ABC):
    """An ordered, streamable input. Subclasses hold only paths and options, so they pickle cheaply (Ray)."""

    #: ``webdataset``, ``parquet``, ``hf-dataset`` or ``manifest``
    kind: str = ""

    @abstractmethod
    def units(self) -> list[str]:
        """Display names of the input units (files, relative to the input's root), in order."""

    @abstractmethod
    def unit_rows(self, unit: int) -> int:
        """Number of rows *unit* yields (reads headers or metadata only)."""

    @abstractmethod
    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        """Every row of *unit* in order, global indices starting at *first*; unselected rows as placeholders."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input for resuming: kind, options and a hash over unit names and sizes."""

    @abstractmethod
    def schema(self):
        """The ``pyarrow.Schema`` of the carried fields (the same for every row and every shard)."""

    def describe(self) -> str:
        """The input as the user gave it."""
        return getattr(self, "spec", self.kind)

    def resolve_path(self, value: str) -> Path:
        """A path from a cell of this input (e.g. a reference-image column): absolute as given, else relative
        to the input's folder — the folder of the first unit, or the input itself when it is a folder."""
        paths, root = getattr(self, "paths", None), getattr(self, "path", None)
        if paths:
            base = Path(paths[0]).parent
        elif root is not None:
            base = Path(root) if Path(root).is_dir() else Path(root).parent
        else:
            base = Path(".")
        return resolve_path(value, base)

    def rows(
        self,
        selection: Selection = ALL,
        *,
        counts: Sequence[int] | None = None,
        on_unit: Callable[[int, int], None] | None = None,
    ) -> Iterator[SourceRow]:
        """All rows in order (placeholders for rows outside *selection*).

        With per-unit *counts* (from :meth:`unit_rows`), units holding no selected row are skipped
        without a single read (and yield nothing). *on_unit(unit, n_rows)* is called as each unit that
        was read is finished.
        """
        first = 0
        for u in range(len(self.units())):
            if counts is not None and not selection.wants_range(first, first + counts[u]):
                first += counts[u]
                continue
            n = 0
            for row in self.iter_unit(u, first, selection):
                n += 1
                yield row
            if on_unit is not None:
                on_unit(u, n)
            first += n

    def count_rows(self) -> list[int]:
        """Rows per unit (see :meth:`unit_rows`)."""
        return [self.unit_rows(u) for u in range(len(self.units()))]

    def __getstate__(self) -> dict[str, Any]:
        # caches (open datasets, read manifests) are rebuilt where the source is used
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}


# --------------------------------------------------------------------------- input patterns

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{00000..00099}`` ranges (zero padding kept) and ``{a,b,c}`` lists, as WebDataset does.

    Several groups multiply out, left to right: ``s{0..1}/{a,b}.tar`` → ``s0/a.tar s0/b.tar s1/a.tar s1/b.tar``.
    A pattern without braces is returned as it is.
    """
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    body = m.group(1)
    rng = _RANGE.match(body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        lo, hi = int(a), int(b)
        width = len(a) if a.lstrip("-").startswith("0") and len(a) > 1 else 0
        step = 1 if hi >= lo else -1
        if abs(hi - lo) > 10_000_000:
            raise UsageError(f"brace range {{{body}}} is too large")
        choices = [str(i).zfill(width) for i in range(lo, hi + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:  # not a brace pattern: keep literally
        head, tail = pattern[: m.end()], pattern[m.end():]
        return [head + rest for rest in expand_braces(tail)]
    head, tail = pattern[: m.start()], pattern[m.end():]
    tails = expand_braces(tail)
    return [head + c + t for c, t in itertools.product(choices, tails)]


def has_pattern(spec: str) -> bool:
    """Whether *spec* holds brace or glob characters."""
    return bool(_BRACE.search(spec)) or any(ch in spec for ch in "*?[")


def expand_input(spec: str) -> list[Path]:
    """The files a pattern names: braces expanded, then globs; sorted within each glob, duplicates removed."""
    out: dict[Path, None] = {}
    for item in expand_braces(spec):
        p = Path(item).expanduser()
        if any(ch in item for ch in "*?["):
            anchor = Path(p.anchor) if p.is_absolute() else Path(".")
            rel = str(p.relative_to(p.anchor)) if p.is_absolute() else item
            for hit in sorted(anchor.glob(rel)):
                out.setdefault(hit, None)
        else:
            out.setdefault(p, None)
    return list(out)


def common_root(paths: Iterable[Path]) -> Path:
    """The deepest folder holding every path (for short, relocatable unit names)."""
    parents = [p.resolve().parent.parts for p in paths]
    if not parents:
        return Path(".")
    common = []
    for level in zip(*parents):
        if all(x == level[0] for x in level):
            common.append(level[0])
        else:
            break
    return Path(*common) if common else Path("/")


def relative_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def files_fingerprint(names: Sequence[str], paths: Sequence[Path]) -> str:
    """SHA-256 over ``name|size`` of each unit (``-1`` for a missing file): cheap, and path-independent."""
    h = hashlib.sha256()
    for name, path in zip(names, paths):
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}|{size}\n".encode())
    return h.hexdigest()


def short_error(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]

"""Registered kinds of tracker writer, the sibling of the results :class:`~clipgauge.sinks.sink.Sink`.

A results sink takes Arrow tables of rows; a tracker writer takes one :class:`~clipgauge.track.result.TrackResult`
(a few scalars, per-prompt scores, thumbnails) per training step, appends to a log that is read while training runs,
and is never consolidated or read back as results. So it is its own interface (:class:`~.base.Writer`), registered
the same way: a :class:`WriterKind` names the spec prefixes (``tensorboard:DIR``), file extensions (``PATH.csv``) and
objects (a ``SummaryWriter``) it takes, and :func:`make_writer` turns a spec into a writer by asking each in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import UsageError
from .base import Writer


@dataclass(frozen=True)
class WriterKind:
    """How specs of one kind of writer are recognised and made.

    ``prefixes``: ``"PREFIX:ARG"`` specs (``make(ARG)``; an empty ARG only with ``arg_optional``); ``extensions``:
    specs that are a file path ending so (``make(PATH)``); ``wraps``/``wrap``: an object this kind writes into (a
    TensorBoard ``SummaryWriter``, a W&B run); ``usage``: how the unknown-spec error names it.
    """

    name: str
    make: Callable[[str], Writer]
    usage: str
    prefixes: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    arg_optional: bool = False
    wraps: Callable[[Any], bool] | None = None
    wrap: Callable[[Any], Writer] | None = None


_KINDS: list[WriterKind] = []


def register_writer_kind(kind: WriterKind) -> WriterKind:
    """Register *kind* (replacing one of the same name); its specs work wherever tracker writers are given."""
    _KINDS[:] = [k for k in _KINDS if k.name != kind.name]
    _KINDS.append(kind)
    return kind


def writer_kinds() -> list[WriterKind]:
    """The registered writer kinds, in registration order."""
    return list(_KINDS)


def make_writer(spec: Any) -> tuple[Any, bool]:
    """``(writer, made_here)`` for a writer spec: a registered prefix, file extension or wrapped object, or a
    :class:`Writer` (any object with a ``write(result)`` method) used as is. Writers made here are closed by the
    tracker (closing never closes a SummaryWriter or W&B run the user passed in); a writer the user made is only
    flushed. Raises :class:`UsageError` for an unknown spec."""
    if isinstance(spec, str):
        prefix, sep, arg = spec.partition(":")
        for kind in _KINDS:
            if prefix in kind.prefixes and sep and (arg or kind.arg_optional):
                return kind.make(arg), True
        for kind in _KINDS:
            if prefix in kind.prefixes and kind.arg_optional and not sep:
                return kind.make(""), True
        for kind in _KINDS:
            if spec.lower().endswith(kind.extensions) and kind.extensions:
                return kind.make(spec), True
        usages = [k.usage for k in _KINDS]
        listed = usages[0] if len(usages) == 1 else f"{', '.join(usages[:-1])} or {usages[-1]}"
        raise UsageError(f"unknown writer '{spec}': use {listed}")
    for kind in _KINDS:
        if kind.wraps is not None and kind.wrap is not None and kind.wraps(spec):
            return kind.wrap(spec), True
    if hasattr(spec, "write") and callable(spec.write):
        return spec, False
    raise UsageError(f"cannot write tracker results to {type(spec).__name__}: give a writer spec or a Writer")

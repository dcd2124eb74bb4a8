"""Atomic file writes: every output appears whole under its final name, or not at all.

Content goes to a hidden temporary file beside the target (``.NAME.XXXX.tmp``), which is renamed onto
it (``os.replace``) only once complete, with the permissions an ordinary ``open()`` would give (the
umask's; ``mkstemp`` alone would make it owner-only). ``durable=True`` also flushes the file and its
folder to disk before and after the rename, for the commit points of resumable runs.

A fault while writing (a full disk, a read-only or vanished folder, permission denied, an I/O error) removes the
temporary file, leaves the old file (if any) as it was, and raises :class:`~clipgauge.errors.OutputError` naming the
final path and the cause. :func:`writing` turns the faults of any other write into the same error.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from .errors import OutputError


@contextmanager
def writing(path: str | os.PathLike, *, hint: str | None = None) -> Iterator[None]:
    """Turn an :class:`OSError` raised in the block into an :class:`OutputError` naming *path* (the output being
    written) and the cause, with *hint* (what to do next) when given. An :class:`OutputError` raised inside (by a
    nested write) keeps its path and gains *hint* if it has none."""
    try:
        yield
    except OutputError as exc:
        exc.with_hint(hint)
        raise
    except OSError as exc:
        raise output_error(path, exc, hint=hint) from exc


def output_error(path: str | os.PathLike, exc: OSError, *, hint: str | None = None) -> OutputError:
    """*exc*, raised while writing *path*, as an :class:`OutputError`: the cause is the OS's words for the error
    number (``No space left on device``), else the message on one line; a file other than *path* (or its temporary
    name) that the error names is added in parentheses."""
    cause = os.strerror(exc.errno) if exc.errno else (" ".join(str(exc).split())[:200] or type(exc).__name__)
    final = Path(path)
    if exc.errno == errno.ENOENT and not final.parent.is_dir():
        cause += f": the folder {final.parent} no longer exists"
    else:
        named = getattr(exc, "filename", None)
        if isinstance(named, (str, os.PathLike)) and not _is_own(final, Path(named)):
            cause += f" ({named})"
    return OutputError(final, cause, hint=hint, errno=exc.errno)


def _is_own(final: Path, named: Path) -> bool:
    """*named* is *final*, its folder, or one of its temporary names (``.NAME.XXXX.tmp``)."""
    return named in (final, final.parent) or (named.parent == final.parent
                                              and named.name.startswith(f".{final.name}."))


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class AtomicFile:
    """A temporary path (:attr:`tmp`) that becomes *final* on :meth:`commit` and disappears on :meth:`abort`.

    As a context manager it commits when the block succeeds and aborts when it raises; an :class:`OSError` in the
    block (or in the commit) becomes an :class:`~clipgauge.errors.OutputError` naming :attr:`final`. *make_folder*
    creates the missing folders above *final* (False: a vanished folder is an error, not silently made again).
    """

    def __init__(self, final: str | os.PathLike, *, durable: bool = False, make_folder: bool = True) -> None:
        self.final = Path(final)
        self.durable = durable
        self.tmp = ""
        with writing(self.final):
            if make_folder:
                self.final.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
            os.close(fd)

    def commit(self) -> Path:
        try:
            with writing(self.final):
                os.chmod(self.tmp, file_mode())
                if self.durable:  # a write error the OS reports only now (EIO, EDQUOT) must not make a part
                    _fsync(self.tmp, os.O_RDONLY, strict=True)
                os.replace(self.tmp, self.final)
        finally:
            self.abort()
        if self.durable:
            _fsync(self.final.parent, os.O_RDONLY)
        return self.final

    def abort(self) -> None:
        """Remove the temporary file (best effort: a leftover ``.tmp`` is never read, and a run removes its own)."""
        try:
            if self.tmp and os.path.exists(self.tmp):
                os.unlink(self.tmp)
        except OSError:
            pass

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(self.final, exc) from exc


def write_atomic(path: str | os.PathLike, data: str | bytes, *, durable: bool = False,
                 make_folder: bool = True) -> Path:
    """Write *data* (text as UTF-8) to *path* atomically; :class:`~clipgauge.errors.OutputError` if it cannot be."""
    with AtomicFile(path, durable=durable, make_folder=make_folder) as target, open(target.tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return target.final


def _fsync(path: str | os.PathLike, flags: int, *, strict: bool = False) -> None:
    """Flush *path* to disk. Errors are ignored, except with *strict* those that say the data did not reach the
    disk (anything but "this file system cannot fsync")."""
    try:
        fd = os.open(path, flags)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if strict and exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)

"""Atomic file writes: every output appears whole under its final name, or not at all.

Content goes to a hidden temporary file beside the target (``.NAME.XXXX.tmp``), which is renamed onto
it (``os.replace``) only once complete, with the permissions an ordinary ``open()`` would give (the
umask's; ``mkstemp`` alone would make it owner-only). ``durable=True`` also flushes the file and its
folder to disk before and after the rename, for the commit points of resumable runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class AtomicFile:
    """A temporary path (:attr:`tmp`) that becomes *final* on :meth:`commit` and disappears on :meth:`abort`.

    As a context manager it commits when the block succeeds and aborts when it raises.
    """

    def __init__(self, final: str | os.PathLike, *, durable: bool = False) -> None:
        self.final = Path(final)
        self.durable = durable
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
        os.close(fd)

    def commit(self) -> Path:
        try:
            os.chmod(self.tmp, file_mode())
            if self.durable:
                _fsync(self.tmp, os.O_RDONLY)
            os.replace(self.tmp, self.final)
        finally:
            self.abort()
        if self.durable:
            _fsync(self.final.parent, os.O_RDONLY)
        return self.final

    def abort(self) -> None:
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_atomic(path: str | os.PathLike, data: str | bytes, *, durable: bool = False) -> Path:
    """Write *data* (text as UTF-8) to *path* atomically."""
    with AtomicFile(path, durable=durable) as target, open(target.tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return target.final


def _fsync(path: str | os.PathLike, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""An image's bytes, read so that no path and no file can hang a run or exhaust its memory.

* The path is ``stat``-ed before anything opens it. Only a regular file is read: a named pipe (opening it waits for
  a writer, forever), a device (``/dev/zero`` never ends; opening some devices has side effects), a socket or a
  folder is refused with its reason.
* The file is then opened non-blocking and ``fstat``-ed: a path swapped for a pipe between the ``stat`` and the
  ``open`` is still refused, and never waited on.
* A file over the size limit is refused from its ``stat`` size, and at most ``limit + 1`` bytes are ever read, so
  a file that grows while it is read is refused too: memory stays bounded whatever the path holds.

An image folder's ``.txt`` sidecar captions are read the same way (:func:`read_sidecar`, at most 1 MiB), so a
sidecar that is a pipe or a device is that row's error, never a hang.

The same limit applies to image bytes that arrive in memory (Parquet cells, WebDataset tar members, Hugging Face
datasets): :func:`check_size`. This module is a leaf (it imports only ``errors`` and ``paths``), so sources can use
it without the decoder.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from .errors import DecodeError
from .paths import path_text

#: Default limit on an image's bytes: 512 MiB (536,870,912 bytes). The pixel limit (``decode.DEFAULT_MAX_PIXELS``,
#: ~89.5 megapixels) already bounds what may be decoded; such an image stored uncompressed as 8-bit RGBA is
#: 89,478,485 × 4 ≈ 358 MB, and any real encoding of it is smaller, so every image the decoder accepts fits under
#: this limit (real generated images are a few MB at most). It exists to bound memory, not to judge images.
DEFAULT_MAX_IMAGE_BYTES = 512 * 2**20
#: What the reasons name as the option that changes the limit (``Scorer(max_image_bytes=)`` in Python).
LIMIT_OPTION = "--max-image-bytes"

_O_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_CHUNK = 1 << 20
_PROBE = 1 << 16


def check_limit(max_bytes: int) -> int:
    """*max_bytes* as an int; ``ValueError`` unless it is at least 1."""
    value = int(max_bytes)
    if value < 1:
        raise ValueError(f"max_image_bytes must be >= 1 (got {max_bytes})")
    return value


def too_large(size: int, max_bytes: int, what: str = "file") -> str:
    """The one-line reason for *size* bytes over the limit, e.g. ``file too large: 900 bytes > limit 800 (…)``."""
    return f"{what} too large: {size} bytes > limit {max_bytes} ({LIMIT_OPTION})"


def check_size(data: bytes | bytearray | memoryview, max_bytes: int, what: str = "image") -> None:
    """Raise :class:`DecodeError` when in-memory image *data* holds more than *max_bytes* bytes."""
    if len(data) > max_bytes:
        raise DecodeError(too_large(len(data), max_bytes, what))


def special_kind(mode: int) -> str | None:
    """What a ``stat`` mode is when it is not a regular file: ``a directory``, ``a named pipe``, ``a device``,
    ``a socket`` or ``not a file``; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def kind_reason(path: str | os.PathLike, kind: str) -> str:
    """The reason for a path that is *kind* (:func:`special_kind`) instead of a regular file."""
    if kind == "a directory":
        return f"is a directory, not an image: {path_text(path)}"
    return f"not a regular file: {path_text(path)} ({kind})"


def path_problem(path: str | os.PathLike, max_bytes: int | None = None) -> str | None:
    """Why *path* cannot be read as an image, from one ``stat`` (nothing is opened): missing, not a regular file,
    or (given *max_bytes*) larger than that. None when it may be read; other ``stat`` failures (permissions, a bad
    name) are left to :func:`read_image_file`, which words them."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"file not found: {path_text(path)}"
    except (OSError, ValueError):
        return None
    kind = special_kind(st.st_mode)
    if kind is not None:
        return kind_reason(path, kind)
    if max_bytes is not None and st.st_size > max_bytes:
        return too_large(st.st_size, max_bytes)
    return None


def read_image_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of the regular file *path*, at most *max_bytes* of them.

    Raises :class:`DecodeError` with a one-line reason when *path* is missing, not a regular file (checked by
    ``stat`` before it is opened, and by ``fstat`` after a non-blocking open), larger than *max_bytes*, or cannot
    be read. At most ``max_bytes + 1`` bytes are read whatever the file holds.
    """
    reason = path_problem(path, max_bytes)
    if reason is not None:
        raise DecodeError(reason)
    try:
        fd = os.open(path, _O_FLAGS)
    except FileNotFoundError:
        raise DecodeError(f"file not found: {path_text(path)}") from None
    except IsADirectoryError:
        raise DecodeError(kind_reason(path, "a directory")) from None
    except (OSError, ValueError) as exc:
        raise DecodeError(f"cannot read {path_text(path)}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        kind = special_kind(st.st_mode)
        if kind is not None:  # swapped between the stat and the open
            raise DecodeError(kind_reason(path, kind))
        data = read_bounded(fd, max_bytes, st.st_size)
    except OSError as exc:
        raise DecodeError(f"cannot read {path_text(path)}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while it was read (its stat size was within the limit)
        raise DecodeError(f"file too large: it grew past the limit of {max_bytes} bytes while read ({LIMIT_OPTION})")
    return data


#: Largest sidecar caption read: 1 MiB (CLIP reads 77 tokens; long-prompt models a few hundred words).
SIDECAR_MAX_BYTES = 1 << 20


def read_sidecar(path: str | os.PathLike, max_bytes: int = SIDECAR_MAX_BYTES) -> str | None:
    """The text of the sidecar caption *path* (UTF-8, invalid bytes as U+FFFD, stripped); None when it is missing.

    Raises :class:`DecodeError` with a one-line reason when it is not a regular file (a pipe is never opened
    for reading, a device never read), larger than *max_bytes*, or cannot be read.
    """
    name = os.path.basename(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DecodeError(f"unreadable prompt: {name}: {getattr(exc, 'strerror', None) or exc}") from None
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise DecodeError(f"unreadable prompt: {name} is {kind}, not a regular file")
    if st.st_size > max_bytes:
        raise DecodeError(f"unreadable prompt: {name} is {st.st_size} bytes (sidecars are read up to {max_bytes})")
    try:
        fd = os.open(path, _O_FLAGS)
        try:
            kind = special_kind(os.fstat(fd).st_mode)
            data = b"" if kind is not None else read_bounded(fd, max_bytes, st.st_size)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DecodeError(f"unreadable prompt: {name}: {exc.strerror or exc}") from None
    if kind is not None:
        raise DecodeError(f"unreadable prompt: {name} is {kind}, not a regular file")
    if len(data) > max_bytes:
        raise DecodeError(f"unreadable prompt: {name} grew past {max_bytes} bytes while read")
    return data.decode("utf-8", errors="replace").strip()


def read_bounded(fd: int, max_bytes: int, size_hint: int = 0) -> bytes:
    """Up to ``max_bytes + 1`` bytes from the open file *fd*, until its end: more than *max_bytes* means the file
    is over the limit. *size_hint* (its ``fstat`` size) is read in one call, anything after it in chunks of at most
    1 MiB, so at most ``max_bytes + 1`` bytes are held whatever *fd* holds (twice that while pieces are joined)."""
    stop = max_bytes + 1
    parts: list[bytes] = []
    got = 0
    n = min(max(size_hint, 0), max_bytes) + 1  # one byte more than expected: a short read is the end
    while got < stop:
        n = min(n, stop - got)
        chunk = os.read(fd, n)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        n = _CHUNK if len(chunk) == n else _PROBE  # after a short read, only look for the end
    return parts[0] if len(parts) == 1 else b"".join(parts)


def image_bytes(src: Any, max_bytes: int) -> Any:
    """*src* with a path read (:func:`read_image_file`) and in-memory bytes checked against *max_bytes*; any other
    image (a PIL image, an array) as given. Raises :class:`DecodeError`."""
    if isinstance(src, (str, os.PathLike)):
        return read_image_file(src, max_bytes)
    if isinstance(src, (bytes, bytearray, memoryview)):
        check_size(src, max_bytes)
    return src

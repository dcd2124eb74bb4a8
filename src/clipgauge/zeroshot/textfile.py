"""Lists read from text files (labels, queries, captions): one item a line, one-line errors."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def read_lines(path: str | Path, what: str, *, comments: bool = False) -> list[str]:
    """The stripped non-blank lines of the UTF-8 text file *path* (with *comments*, lines starting with ``#`` are
    skipped too). :class:`UsageError` naming *what* (``labels``, ``queries``…) when the file cannot be read or holds
    nothing."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc}") from None
    lines = [x.strip() for x in text.splitlines()]
    lines = [x for x in lines if x and not (comments and x.startswith("#"))]
    if not lines:
        raise UsageError(f"{what} file {path} is empty")
    return lines

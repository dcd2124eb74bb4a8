"""Exceptions. A :class:`UsageError` is the user's to fix: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class ClipgaugeError(Exception):
    """Base of every error clipgauge raises on purpose (its message is one line, for a person)."""


class UsageError(ClipgaugeError):
    """A usage or configuration mistake (bad option, unreadable manifest, unknown model).

    The message speaks of the library; *cli*, when given, is the same message in the command line's terms
    (naming its flags), which the ``clipgauge`` command prints instead.
    """

    def __init__(self, message: str, *, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli = cli


class EngineError(ClipgaugeError):
    """A run could not finish (a failed Ray job, an input or output changed underneath it). Committed work is
    kept: running the same command again resumes it."""


class OutputError(UsageError, OSError):
    """An output could not be written: the disk is full, the folder is read-only or gone, permission denied, an I/O
    error. ``path`` is the output that was being written, ``cause`` the reason (``No space left on device``),
    ``hint`` what to do next (``committed parts are kept; run the same command again to resume``), when known.

    The CLI prints ``cannot write PATH: CAUSE (HINT)`` on one line and exits 2. It is also an :class:`OSError`
    (``errno`` the OS error number, such as ``errno.ENOSPC``, or None; ``filename`` the path), so code that caught
    the OS's error around a write still catches it.
    """

    def __init__(self, path: object, cause: str, *, hint: str | None = None, errno: int | None = None) -> None:
        self.path, self.cause, self.hint = str(path), cause, hint
        super().__init__(self._text())
        self.errno, self.strerror, self.filename = errno, cause, self.path

    def with_hint(self, hint: str | None) -> OutputError:
        """Add *hint* (what to do next) unless there is one already; returns self."""
        if hint and not self.hint:
            self.hint = hint
            self.args = (self._text(),)
        return self

    def _text(self) -> str:
        return f"cannot write {self.path}: {self.cause}" + (f" ({self.hint})" if self.hint else "")

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> tuple:  # picklable (Ray sends errors between processes)
        return _output_error, (self.path, self.cause, self.hint, self.errno)


def _output_error(path: str, cause: str, hint: str | None, errno: int | None) -> OutputError:
    return OutputError(path, cause, hint=hint, errno=errno)


class ModelLoadError(UsageError):
    """The model spec could not be resolved or loaded."""


class ManifestError(UsageError):
    """The manifest cannot be read, or lacks a required column."""


class RowError(ClipgaugeError):
    """One input row cannot be scored.

    ``reason`` is the short text written to the row's ``error`` field; ``index`` (0-based), when set,
    says which input it was.
    """

    def __init__(self, reason: str, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        super().__init__(reason if index is None else f"input {index}: {reason}")


class DecodeError(RowError):
    """An image file is missing, empty, truncated, not an image, or too large to decode safely."""


class PrecisionWarning(RuntimeWarning):
    """The chosen precision is allowed but will be slow on this device (e.g. bf16 on a CPU without bf16)."""


class LanguageWarning(UserWarning):
    """Prompts that are not English were scored with a model that reads English only (less reliable scores)."""


class PluginWarning(UserWarning):
    """An installed plugin (entry point of ``clipgauge.metrics`` or ``clipgauge.models``) failed and was skipped."""

"""Exceptions. A :class:`UsageError` is the user's to fix: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """A usage or configuration mistake (bad option, unreadable manifest, unknown model)."""


class ModelLoadError(UsageError):
    """The model spec could not be resolved or loaded."""


class ManifestError(UsageError):
    """The manifest cannot be read, or lacks a required column."""


class RowError(Exception):
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

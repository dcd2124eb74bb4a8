"""The writer interface: a sink for tracker results (TensorBoard, Weights & Biases, CSV, JSONL, …)."""

from __future__ import annotations

from ..result import TrackResult


class Writer:
    """Receives every :class:`~clipgauge.track.result.TrackResult` of a tracker, on rank 0 only.

    ``wants_images`` tells the tracker to attach thumbnails of the best and worst images to results.
    Subclasses implement :meth:`write`; :meth:`flush` and :meth:`close` are optional.
    """

    wants_images: bool = False

    def write(self, result: TrackResult) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far durable (default: nothing to do)."""

    def close(self) -> None:
        """Flush and release resources; writers the tracker did not create are not closed by it."""
        self.flush()


def missing_extra(package: str, extra: str) -> str:
    """The one-line message for a writer whose optional dependency is not installed."""
    return f"this writer needs {package}: pip install 'clipgauge[{extra}]'"

"""The writer interface: a sink for tracker results (TensorBoard, Weights & Biases, CSV, JSONL, …)."""

from __future__ import annotations

from collections.abc import Mapping

from ..result import TrackResult


class Writer:
    """Receives every :class:`~clipgauge.track.result.TrackResult` of a tracker, on rank 0 only.

    ``wants_images`` tells the tracker to attach thumbnails of the best and worst images to results.
    Subclasses implement :meth:`write`; :meth:`write_scalars`, :meth:`flush` and :meth:`close` are optional.
    """

    wants_images: bool = False

    def write(self, result: TrackResult) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_scalars(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        """Write plain scalars at *step* (``train_reward/NAME/mean`` …; *wall_time* in seconds since the epoch).
        Default: :meth:`write` of a result holding only these scalars (:func:`scalars_result`)."""
        self.write(scalars_result(step, scalars, wall_time))

    def flush(self) -> None:
        """Make everything written so far durable (default: nothing to do)."""

    def close(self) -> None:
        """Flush and release resources; writers the tracker did not create are not closed by it."""
        self.flush()


def scalars_result(step: int, scalars: Mapping[str, float], wall_time: float) -> TrackResult:
    """A :class:`TrackResult` holding only *scalars* (no prompts, images or prefix), for writers that take results."""
    return TrackResult(step=int(step), metrics=dict(scalars), per_prompt={}, prefix="", wall_time=wall_time)


def missing_extra(package: str, extra: str) -> str:
    """The one-line message for a writer whose optional dependency is not installed."""
    return f"this writer needs {package}: pip install 'clipgauge[{extra}]'"

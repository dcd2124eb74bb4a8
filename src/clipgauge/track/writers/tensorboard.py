"""TensorBoard writer: real event files (``torch.utils.tensorboard``), readable by TensorBoard's own loader.

Writes every scalar of an evaluation (``clip/mean`` … and ``clip/prompt/NAME``) at its step, plus, when
``images=True``, a grid of the best and worst images (tag ``clip/best_worst``, captions: score · prompt)
and the same as a Markdown table (tag ``clip/best_worst`` in the Text tab). Give it a log directory — a new
event file is added there, and TensorBoard shows it with the run's other events — or the
``SummaryWriter`` your training loop already uses, so the scores sit next to your loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UsageError
from ..result import TrackResult
from .base import Writer, missing_extra
from .grid import extremes_grid, extremes_markdown


class TensorBoardWriter(Writer):
    """Write results to a TensorBoard log directory or an existing ``SummaryWriter``.

    Args:
        logdir: the run's log directory (created if needed); ignored when *summary_writer* is given.
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter`` (or anything with ``add_scalar``,
            ``add_image``, ``add_text``) to write into; it is flushed but never closed by this writer.
        images: also write the best/worst image grid and table.
        per_prompt: also write ``clip/prompt/NAME`` scalars.
    """

    def __init__(self, logdir: str | Path | None = None, *, summary_writer: Any = None, images: bool = True,
                 per_prompt: bool = True) -> None:
        if summary_writer is None:
            if logdir is None:
                raise UsageError("TensorBoardWriter needs a log directory or a SummaryWriter")
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UsageError(missing_extra("tensorboard", "tensorboard")) from None
            summary_writer = SummaryWriter(log_dir=str(Path(logdir).expanduser()))
            self._owned = True
        else:
            self._owned = False
        self.tb = summary_writer
        self.logdir = getattr(summary_writer, "log_dir", logdir)
        self.wants_images = images
        self.per_prompt = per_prompt

    def write(self, result: TrackResult) -> None:
        prompt_key = f"{result.prefix}/prompt/"
        for key, value in result.metrics.items():
            if self.per_prompt or not key.startswith(prompt_key):
                self.tb.add_scalar(key, float(value), result.step, walltime=result.wall_time or None)
        if self.wants_images and (result.best or result.worst):
            tag = f"{result.prefix}/best_worst"
            grid = extremes_grid(result.best, result.worst)
            if grid is not None:
                self.tb.add_image(tag, grid, result.step, dataformats="HWC")
            self.tb.add_text(tag, extremes_markdown(result.best, result.worst), result.step)
        self.flush()

    def flush(self) -> None:
        flush = getattr(self.tb, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        if self._owned:
            self.tb.close()
        else:
            self.flush()

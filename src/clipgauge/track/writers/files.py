"""Plain-file writers: CSV (one row per scalar) and JSONL (one object per evaluation). No dependencies.

Both append, so a resumed run or a later ``clipgauge track`` adds to the same file; each evaluation's lines are
handed to the OS in one write when made, so the file is readable while training runs. An evaluation that cannot be
written whole (a full disk, a vanished folder …) is cut off again, so the file never ends in half a line, and
:class:`~clipgauge.errors.OutputError` names the file and the cause.

CSV columns: ``step, wall_time, metric, value, prompt`` — one row per scalar (``clip/mean`` …, and
``clip/prompt/NAME`` with the prompt's text in ``prompt``); a tidy layout that stays valid when prompts
change between evaluations. JSONL: :meth:`TrackResult.to_dict` per evaluation (all per-image scores kept), and
``{"step", "wall_time", "metrics"}`` per batch of plain scalars (:meth:`CLIPTracker.log_reward`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from ...atomic import writing
from ..result import TrackResult
from .base import Writer

CSV_COLUMNS = ("step", "wall_time", "metric", "value", "prompt")


class _AppendingFile(Writer):
    """A writer that keeps one file open for appending during the run, and appends whole records."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - open for the run; unbuffered: see _append
        self.is_new = os.fstat(self._fh.fileno()).st_size == 0

    def _append(self, text: str) -> None:
        """Append *text* (UTF-8) whole, or not at all: a failed write is cut off again (:class:`OutputError`)."""
        data = memoryview(text.encode("utf-8"))
        with writing(self.path):
            start = os.fstat(self._fh.fileno()).st_size
            try:
                while data:
                    data = data[self._fh.write(data):]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fh.fileno(), start)
                raise

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class CSVWriter(_AppendingFile):
    """Append one CSV row per scalar of every evaluation to *path* (header written once)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        if self.is_new:
            self._append(_csv_text([CSV_COLUMNS]))

    def write(self, result: TrackResult) -> None:
        prompt_key = f"{result.prefix}/prompt/"
        rows = []
        for key, value in result.metrics.items():
            prompt = ""
            if key.startswith(prompt_key):
                scores = result.per_prompt.get(key[len(prompt_key):])
                prompt = scores.prompt if scores else ""
            rows.append((result.step, f"{result.wall_time:.3f}", key, repr(float(value)), prompt))
        self._append(_csv_text(rows))


class JSONLWriter(_AppendingFile):
    """Append one JSON object per evaluation (:meth:`TrackResult.to_dict`) to *path*, and one
    ``{"step", "wall_time", "metrics"}`` object per :meth:`write_scalars` (training rewards)."""

    def write(self, result: TrackResult) -> None:
        self._append(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")

    def write_scalars(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        metrics = {k: None if math.isnan(v) else float(v) for k, v in scalars.items()}  # NaN → null, as to_dict
        self._append(json.dumps({"step": int(step), "wall_time": wall_time, "metrics": metrics}) + "\n")


def _csv_text(rows: list) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


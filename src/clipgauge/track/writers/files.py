"""Plain-file writers: CSV (one row per scalar) and JSONL (one object per evaluation). No dependencies.

Both append, so a resumed run or a later ``clipgauge track`` adds to the same file; each line is
flushed when written, so the file is readable while training runs.

CSV columns: ``step, wall_time, metric, value, prompt`` — one row per scalar (``clip/mean`` …, and
``clip/prompt/NAME`` with the prompt's text in ``prompt``); a tidy layout that stays valid when prompts
change between evaluations. JSONL: :meth:`TrackResult.to_dict` per evaluation (all per-image scores kept).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..result import TrackResult
from .base import Writer

CSV_COLUMNS = ("step", "wall_time", "metric", "value", "prompt")


class _AppendingFile(Writer):
    """A writer that keeps one file open for appending during the run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.is_new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - open for the run

    def flush(self) -> None:
        if not self._fh.closed:
            self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class CSVWriter(_AppendingFile):
    """Append one CSV row per scalar of every evaluation to *path* (header written once)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._csv = csv.writer(self._fh)
        if self.is_new:
            self._csv.writerow(CSV_COLUMNS)
            self._fh.flush()

    def write(self, result: TrackResult) -> None:
        prompt_key = f"{result.prefix}/prompt/"
        for key, value in result.metrics.items():
            prompt = ""
            if key.startswith(prompt_key):
                scores = result.per_prompt.get(key[len(prompt_key):])
                prompt = scores.prompt if scores else ""
            self._csv.writerow((result.step, f"{result.wall_time:.3f}", key, repr(float(value)), prompt))
        self._fh.flush()


class JSONLWriter(_AppendingFile):
    """Append one JSON object per evaluation (:meth:`TrackResult.to_dict`) to *path*."""

    def write(self, result: TrackResult) -> None:
        self._fh.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self._fh.flush()


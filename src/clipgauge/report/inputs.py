"""The report's input: results files written by ``clipgauge score --out``, one :class:`ReportRun` each.

A run is its per-row records, the ``FILE.summary.json`` beside it when there is one (for the model and
provenance), and the folders its relative image paths may be relative to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..paths import resolve_path
from ..sinks import read_results, summary_path
from ..stats.records import SCALED_COLUMN, as_float, has_error, primary_column, run_names


@dataclass
class ReportRun:
    """One results file. ``summary`` is the parsed ``FILE.summary.json`` beside it, or None."""

    name: str
    path: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any] | None
    image_bases: tuple[Path, ...]

    @cached_property
    def columns(self) -> list[str]:
        """Column names in first-seen order over all records (read once: the records are not changed)."""
        seen: dict[str, None] = {}
        for r in self.records:
            for k in r:
                seen.setdefault(k, None)
        return list(seen)

    @property
    def scored_scale(self) -> str | None:
        """The ``--scale`` the run was scored in (from its summary), or None when unknown."""
        return (self.summary or {}).get("scale")

    @property
    def model(self) -> str | None:
        """The model spec from the summary's provenance, or the ``model`` column when all rows agree."""
        spec = ((self.summary or {}).get("provenance") or {}).get("model", {}).get("spec")
        if spec:
            return str(spec)
        values = {str(r.get("model")) for r in self.records if r.get("model") not in (None, "")}
        return values.pop() if len(values) == 1 else None

    @property
    def weights_sha256(self) -> str | None:
        return ((self.summary or {}).get("provenance") or {}).get("model", {}).get("weights_sha256")

    @cached_property
    def has_clip(self) -> bool:
        """Whether the run has the ``clip`` metric's primary column, the one the score scales convert
        (:data:`~clipgauge.stats.records.SCALED_COLUMN`; a run of, say, aesthetic alone has not)."""
        return SCALED_COLUMN in self.columns

    @cached_property
    def primaries(self) -> list[tuple[str, bool]]:
        """Per metric the run's summary declares, in order: its primary column (as the metric marked it,
        :func:`~clipgauge.stats.records.primary_column`) and whether higher is better, where the records have
        that column and it has a direction. Without a summary: the clip metric's, when the records have it."""
        declared = (self.summary or {}).get("columns") or []
        out = []
        for metric in dict.fromkeys(c.get("metric") for c in declared):
            c = primary_column([d for d in declared if d.get("metric") == metric])
            if c is not None and c.get("name") in self.columns and c.get("higher_is_better") is not None:
                out.append((str(c["name"]), bool(c["higher_is_better"])))
        if not declared and self.has_clip:
            out.append((SCALED_COLUMN, True))
        return out

    @property
    def primary(self) -> tuple[str, bool] | None:
        """The run's score: the clip metric's primary column when it has it, else the first metric's primary
        column, with whether higher is better (None when the run has none)."""
        if self.has_clip:
            return SCALED_COLUMN, True
        return next((p for p in self.primaries if p[0] != SCALED_COLUMN), None)

    def metric_columns(self) -> list[str]:
        """The numeric metric columns the run's summary declares as summarised (besides the clip score), in
        order: ``aesthetic``, ``pickscore``, ``hpsv2``, a registered metric's columns, …"""
        declared = (self.summary or {}).get("columns") or []
        return [c["name"] for c in declared if c.get("summarize") and c.get("type") == "float64"]

    def declaration(self, column: str) -> dict[str, Any]:
        """The summary's declaration of *column* (unit, range, ``higher_is_better``, …); {} when undeclared."""
        declared = (self.summary or {}).get("columns") or []
        return next((c for c in declared if c.get("name") == column), {})

    def values(self, column: str) -> np.ndarray:
        """*column* as float64, as written (no scale); NaN where the row has an error or no value."""
        return np.array([math.nan if has_error(r) else as_float(r.get(column)) for r in self.records],
                        dtype=np.float64)

    def clip_scores(self) -> np.ndarray:
        """The clip metric's primary column (raw cosines in [-1, 1], which the score scales convert) as float64;
        NaN where the row has an error or no value."""
        return self.values(SCALED_COLUMN)

    def truncated(self) -> np.ndarray:
        """Whether each row's prompt was truncated (``True``/``"True"``/``1`` all count)."""
        return np.array([as_bool(r.get("truncated")) for r in self.records], dtype=bool)

    def errors(self) -> list[str | None]:
        """Each row's error reason, or None for a scored row."""
        return [str(r.get("error")) if has_error(r) else None for r in self.records]

    def resolve_image(self, value: Any) -> tuple[Path | None, str | None]:
        """``(path, None)`` for the row's image file, or ``(None, reason)`` when it cannot be found.

        Absolute paths are used as they are; relative ones are tried against each of ``image_bases``.
        """
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            return None, "no image path in this row"
        p = Path(str(value)).expanduser()
        if p.is_absolute():
            return (p, None) if p.is_file() else (None, f"image not found: {p}")
        for base in self.image_bases:
            found = resolve_path(p, base)  # the one rule of clipgauge.paths: relative to the folder base
            if found.is_file():
                return found, None
        tried = ", ".join(str(b) for b in self.image_bases)
        return None, f"image not found: {p} (looked in {tried}; see --image-root)"


def as_bool(value: Any) -> bool:
    """A results-file boolean: real booleans, numbers, or text such as ``True``/``false``/``1`` (CSV)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t", "y")
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def load_runs(paths: Sequence[str | Path], *, image_root: str | Path | None = None) -> list[ReportRun]:
    """Read each results file (JSONL/CSV/TSV/Parquet) and its summary; :class:`UsageError` when unusable.

    Relative image paths are looked up in *image_root* when given; otherwise in the results file's folder,
    then in the folder of the manifest it was scored from (as recorded in its summary).
    """
    if not paths:
        raise UsageError("no results files given")
    runs = []
    names = run_names([Path(p) for p in paths])
    for path, name in zip(paths, names):
        path = Path(path)
        records = read_results(path)
        summary = _read_summary(path)
        run = ReportRun(name=name, path=path, records=records, summary=summary,
                        image_bases=_image_bases(path, summary, image_root))
        metrics = [c for c in run.metric_columns() if c in run.columns]
        scored = metrics or run.has_clip or any("label" in r and "probability" in r for r in records)
        if records and not scored:
            raise UsageError(f"{path} has no score column: no 'cosine' and no metric column declared by a summary "
                             "beside it (is it a results file written by clipgauge's scoring?)",
                             cli=f"{path} has no score column: no 'cosine' and no metric column declared by a "
                             "summary beside it (is this a file written by 'clipgauge score --out'?)")
        runs.append(run)
    return runs


def _read_summary(path: Path) -> dict[str, Any] | None:
    sp = summary_path(path)
    if not sp.is_file():
        return None
    try:
        data = json.loads(sp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a damaged summary only costs the provenance columns; the records carry the scores
    return data if isinstance(data, dict) else None


def _image_bases(path: Path, summary: dict[str, Any] | None, image_root: str | Path | None) -> tuple[Path, ...]:
    if image_root is not None:
        return (Path(image_root).expanduser(),)
    bases = [path.parent]
    manifest = ((summary or {}).get("input") or {}).get("manifest")
    kind = ((summary or {}).get("input") or {}).get("kind")
    base_dir = ((summary or {}).get("input") or {}).get("base_dir")
    if base_dir:
        base = Path(str(base_dir)).expanduser()
        if base.resolve() != path.parent.resolve():
            bases.append(base)
    elif manifest:
        m = Path(str(manifest)).expanduser()
        base = m if kind == "folder" else m.parent
        if base.resolve() != path.parent.resolve():
            bases.append(base)
    return tuple(bases)



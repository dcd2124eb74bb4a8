"""``clipgauge validate``: does a metric agree with people? The driver behind :func:`clipgauge.validate`.

judgement file (:mod:`clipgauge.sources.judgements`) → the metric's score of every judged image, computed with
:func:`clipgauge.score` (any metric) or read from a column → agreement statistics with bootstrap CIs
(:mod:`clipgauge.stats.agreement`) → printed beside the published numbers of the benchmark the file looks like.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .sources.judgements import Judgements, read_judgements
from .stats.agreement import N_RESAMPLES, agreement

#: Published agreement of metrics with people (statistic in [-1, 1] or [0, 1]; the papers print ×100 or %).
PUBLISHED: list[dict[str, Any]] = [
    {"benchmark": "Flickr8K-Expert", "metric": "CLIP-S", "clipgauge": "clip", "statistic": "kendall_tau_c",
     "value": 0.512, "model": "ViT-B/32", "source": "Hessel et al. 2021 (CLIPScore), Table 1"},
    {"benchmark": "Flickr8K-Expert", "metric": "RefCLIP-S", "clipgauge": "refclip_s", "statistic": "kendall_tau_c",
     "value": 0.530, "model": "ViT-B/32", "source": "Hessel et al. 2021 (CLIPScore), Table 1"},
    {"benchmark": "Flickr8K-CF", "metric": "CLIP-S", "clipgauge": "clip", "statistic": "kendall_tau_b",
     "value": 0.344, "model": "ViT-B/32", "source": "Hessel et al. 2021 (CLIPScore), Table 1"},
    {"benchmark": "Flickr8K-CF", "metric": "RefCLIP-S", "clipgauge": "refclip_s", "statistic": "kendall_tau_b",
     "value": 0.364, "model": "ViT-B/32", "source": "Hessel et al. 2021 (CLIPScore), Table 1"},
    {"benchmark": "Pick-a-Pic", "metric": "zero-shot CLIP-H", "clipgauge": "clip", "statistic": "pairwise_accuracy",
     "value": 0.608, "model": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
     "source": "Kirstain et al. 2023 (Pick-a-Pic), Table 1"},
    {"benchmark": "Pick-a-Pic", "metric": "PickScore", "clipgauge": "pickscore", "statistic": "pairwise_accuracy",
     "value": 0.702, "model": "yuvalkirstain/PickScore_v1", "source": "Kirstain et al. 2023 (Pick-a-Pic), Table 1"},
]
STATISTICS = ("kendall_tau_b", "kendall_tau_c", "spearman", "pairwise_accuracy")


@dataclass
class ValidationResult:
    """Agreement of one metric with the people of one judgement file (``agreement``: the ``--json`` keys)."""

    judgements: str
    format: str
    benchmark: str | None
    metric: str | None
    column: str
    agreement: dict[str, Any]
    published: list[dict[str, Any]]
    errors: int = 0
    first_error: str | None = None
    scores: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.agreement, "judgements": self.judgements, "format": self.format, "benchmark": self.benchmark,
                "metric": self.metric, "column": self.column, "published": self.published, "errors": self.errors,
                "first_error": self.first_error, "scores": self.scores, **self.extra}


def published_for(benchmark: str | None, metric: str | None) -> list[dict[str, Any]]:
    """The published rows of *benchmark*, each marked ``matches`` when it is the same clipgauge *metric*."""
    return [{**p, "matches": p["clipgauge"] == metric} for p in PUBLISHED if p["benchmark"] == benchmark]


def validate(judgements: str | Path, *, metric: str | None = "clip", column: str | None = None,
             options: Any = None, image_root: str | Path | None = None, scores_out: str | Path | None = None,
             tie_threshold: float = 0.0, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
             seed: int = 0) -> ValidationResult:
    """Measure how well *metric* (any clipgauge metric spec, run through :func:`clipgauge.score` with *options*,
    a :class:`~clipgauge.ScoreOptions` whose ``metrics`` are replaced) or a precomputed *column* agrees with the
    human judgements in *judgements* (see :mod:`clipgauge.sources.judgements` for the three formats).

    The ``clip`` metric is read in ``options.scale`` (``clip-s`` = 2.5·max(cos, 0), as the CLIPScore paper);
    another metric by its own column (``refclip_s``: RefCLIP-S, given the ``references`` of a Flickr8K file).
    *scores_out*: keep the per-image results file. Rows that could not be scored are left out of the statistics
    and counted (``errors``, ``first_error``). Raises :class:`UsageError` for bad input.
    """
    data = read_judgements(judgements, image_root=image_root)
    if column is not None:
        values, name, errors, first, kept = _column_values(data, column), column, 0, None, None
        metric = None
    else:
        if metric is None:
            raise UsageError("give a metric or a column to validate")
        values, name, errors, first, kept = _score(data, metric, options, scores_out)
    if data.kind == "pairs":
        a, b, h = (np.array(x, dtype=np.float64) for x in zip(*data.pairs))
        ia, ib = a.astype(int), b.astype(int)
        doc = agreement(pairs=(values[ia], values[ib], h), tie_threshold=tie_threshold, confidence=confidence,
                        n_resamples=n_resamples, seed=seed)
    else:
        doc = agreement(values, np.array(data.human, dtype=np.float64), confidence=confidence,
                        n_resamples=n_resamples, seed=seed)
    metric_name = metric.split(":")[0] if metric else None
    return ValidationResult(str(data.path), data.format, data.benchmark, metric_name, name, doc,
                            published_for(data.benchmark, metric_name), errors, first, kept)


def _column_values(data: Judgements, column: str) -> np.ndarray:
    if not any(column in r for r in data.rows):
        have = sorted({k for r in data.rows for k in r} - {"image"})
        raise UsageError(f"the judgements have no '{column}' column (columns: {', '.join(have)}; pairwise files "
                         f"give it as {column}_0 and {column}_1)")
    out = np.full(len(data.rows), np.nan)
    for i, r in enumerate(data.rows):
        with contextlib.suppress(TypeError, ValueError):
            out[i] = float(r.get(column))
    return out


def _score(data: Judgements, metric: str, options: Any, scores_out: str | Path | None
           ) -> tuple[np.ndarray, str, int, str | None, str | None]:
    from .pipeline.plan import ScoreOptions
    from .runs import score
    from .sinks.results import read_results

    options = options or ScoreOptions()
    spec = metric
    if metric.split(":")[0] == "refclip_s" and "column=" not in metric:
        if not any("references" in r for r in data.rows):
            raise UsageError("refclip_s needs reference captions: a Flickr8K file, or give refclip_s:column=NAME")
        spec = f"{metric}{',' if ':' in metric else ':'}column=references"
    if not any(r.get("image") is not None for r in data.rows):
        raise UsageError(f"'{data.path}' names no images")
    with tempfile.TemporaryDirectory(prefix="clipgauge-validate-") as tmp:
        manifest = _write_manifest(data.rows, Path(tmp))
        out = Path(scores_out) if scores_out is not None else Path(tmp) / "scores.parquet"
        result = score(manifest, out, options.with_(metrics=[spec]))
        records = read_results(out)
    column = _metric_column(spec.split(":")[0], result.summary)
    values = np.array([_float(r.get(column)) for r in records], dtype=np.float64)
    return values, column, result.n_errors, result.first_error, str(scores_out) if scores_out else None


def _metric_column(name: str, summary: dict[str, Any]) -> str:
    """The column holding metric *name*: ``score`` for clip (in the run's scale), a column named as the metric,
    else the metric's first summarized score column."""
    from .stats.records import metric_column

    if name == "clip":
        return "score"
    declared = {c.get("name") for c in summary.get("columns") or []}
    return name if name in declared else str(metric_column(name, [summary])[0])


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _write_manifest(rows: list[dict[str, Any]], folder: Path) -> Path:
    """The judged images as a manifest (Parquet where images are bytes, else JSONL), in the judgement order."""
    if any(isinstance(r.get("image"), bytes) for r in rows):
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "judged.parquet"
        table = pa.table({"image": pa.array([r.get("image") for r in rows], pa.binary()),
                          "prompt": pa.array([r.get("prompt") for r in rows], pa.string())})
        pq.write_table(table, path)
        return path
    path = folder / "judged.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            keep = {k: v for k, v in r.items() if k in ("image", "prompt", "references")}
            fh.write(json.dumps(keep, ensure_ascii=False, default=str) + "\n")
    return path

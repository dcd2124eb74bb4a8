"""Score a whole manifest: rows in, records and a summary (with provenance) out.

The CLI's ``score`` command is this function plus option parsing and printing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RowError, UsageError
from .provenance import file_sha256
from .scoring.scales import check_scale, to_scale
from .scoring.scorer import Scorer
from .sources.manifest import Manifest
from .stats.summary import summarize_scores

#: Columns that ``score`` adds to every row (an input column of the same name is replaced).
RESULT_COLUMNS = ("score", "cosine", "truncated", "error")


@dataclass
class ScoreRun:
    records: list[dict[str, Any]]
    columns: list[str]
    summary: dict[str, Any]

    @property
    def n_errors(self) -> int:
        return int(self.summary["errors"])


def score_manifest(
    manifest: Manifest,
    scorer: Scorer,
    *,
    scale: str = "cosine",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ScoreRun:
    """Score every row of *manifest*; broken rows come back with ``error`` set and ``score`` null.

    ``score`` is in *scale* (see :mod:`clipgauge.scoring.scales`), ``cosine`` always the raw cosine.
    With *strict*, the first broken row raises :class:`~clipgauge.errors.RowError`.
    """
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = manifest.rows
    if strict:
        for i, r in enumerate(rows):
            if r.error:
                raise RowError(r.error, i)
    # rows already broken while reading are skipped by passing None image + their error as prompt check
    images = [None if r.error else r.image for r in rows]
    prompts = [r.prompt if not r.error else None for r in rows]
    result = scorer.score_pairs(images, prompts, strict=strict, progress=progress)
    errors = [r.error or e for r, e in zip(rows, result.error)]
    score = to_scale(result.cosine, scale)
    columns = [c for c in manifest.columns if c not in RESULT_COLUMNS] + list(RESULT_COLUMNS)
    records = []
    for r, s, c, t, e in zip(rows, score, result.cosine, result.truncated, errors):
        rec = dict(r.fields)
        rec.update(score=None if e else float(s), cosine=None if e else float(c), truncated=bool(t), error=e)
        records.append(rec)
    summary = summarize_scores(result.cosine, result.truncated, errors)
    summary["scale"] = scale
    summary["input"] = {
        "manifest": str(manifest.path),
        "kind": manifest.kind,
        "sha256": file_sha256(manifest.path) if Path(manifest.path).is_file() else None,
    }
    summary["provenance"] = scorer.provenance()
    return ScoreRun(records=records, columns=columns, summary=summary)

"""Score a whole manifest: rows in, records and a summary (with provenance) out.

The CLI's ``score`` command is this function plus option parsing and printing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RowError, UsageError
from .provenance import file_sha256
from .scoring.reference import parse_reference_texts, refclip_s
from .scoring.scales import check_scale, to_scale
from .scoring.scorer import Scorer
from .sources.manifest import Manifest
from .stats.summary import describe, summarize_scores

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


def manifest_images(manifest: Manifest) -> list[Any]:
    """The image of each row, in order (None for rows already broken while reading)."""
    return [None if r.error else r.image for r in manifest.rows]


def score_manifest(
    manifest: Manifest,
    scorer: Scorer,
    *,
    scale: str = "cosine",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    reference_image: str | None = None,
    reference_text: str | None = None,
) -> ScoreRun:
    """Score every row of *manifest*; broken rows come back with ``error`` set and ``score`` null.

    ``score`` is in *scale* (see :mod:`clipgauge.scoring.scales`), ``cosine`` always the raw cosine.
    With *strict*, the first broken row raises :class:`~clipgauge.errors.RowError`.
    *reference_image* names a column of reference image paths: adds ``clip_i`` (image–image cosine).
    *reference_text* names a column of reference captions: adds ``ref_cosine`` and ``refclip_s``
    (see :mod:`clipgauge.scoring.reference`). A failing reference sets the row's ``error`` but keeps its score.
    """
    for column in (reference_image, reference_text):
        if column is not None and column not in manifest.columns:
            raise UsageError(f"manifest has no '{column}' column (columns: {', '.join(manifest.columns)})")
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    scorer.encoder.start_weights_hash()  # the provenance at the end needs it: hash while the rows are scored
    rows = manifest.rows
    if strict:
        for i, r in enumerate(rows):
            if r.error:
                raise RowError(r.error, i)
    # rows already broken while reading are skipped by passing None image + their error as prompt check
    images = manifest_images(manifest)
    prompts = [r.prompt if not r.error else None for r in rows]
    result = scorer.score_pairs(images, prompts, strict=strict, progress=progress,
                                keep_embeddings=reference_image is not None)
    errors = [r.error or e for r, e in zip(rows, result.error)]
    score = to_scale(result.cosine, scale)
    extra: dict[str, np.ndarray] = {}
    if reference_image is not None:
        extra["clip_i"] = _clip_i(manifest, scorer, result.image_embeddings, reference_image, errors, strict)
    if reference_text is not None:
        best = _best_reference_cosine(manifest, scorer, reference_text, errors, strict)
        extra["ref_cosine"] = best
        extra["refclip_s"] = refclip_s(result.cosine, best)
    added = list(RESULT_COLUMNS) + list(extra)
    columns = [c for c in manifest.columns if c not in added] + added
    records = []
    for i, (r, s, c, t, e) in enumerate(zip(rows, score, result.cosine, result.truncated, errors)):
        rec = dict(r.fields)
        ok = not np.isnan(c)
        rec.update(score=float(s) if ok else None, cosine=float(c) if ok else None, truncated=bool(t), error=e)
        for name, values in extra.items():
            rec[name] = None if np.isnan(values[i]) else float(values[i])
        records.append(rec)
    summary = summarize_scores(result.cosine, result.truncated, errors)
    for name, values in extra.items():
        summary[name] = describe(values)
    summary["scale"] = scale
    summary["input"] = {
        "manifest": str(manifest.path),
        "kind": manifest.kind,
        "sha256": file_sha256(manifest.path) if Path(manifest.path).is_file() else None,
    }
    summary["provenance"] = scorer.provenance()
    return ScoreRun(records=records, columns=columns, summary=summary)


def _fail(errors: list[str | None], i: int, reason: str, strict: bool) -> None:
    if strict:
        raise RowError(reason, i)
    errors[i] = errors[i] or reason


def _clip_i(manifest: Manifest, scorer: Scorer, image_emb: np.ndarray | None, column: str,
            errors: list[str | None], strict: bool) -> np.ndarray:
    """Cosine of each generated image with its reference image; each distinct reference is encoded once."""
    n = len(manifest.rows)
    out = np.full(n, np.nan)
    paths: dict[int, Path] = {}
    for i, r in enumerate(manifest.rows):
        value = r.fields.get(column)
        if isinstance(value, str) and value.strip():
            paths[i] = manifest.resolve(value)
        elif image_emb is not None and not np.isnan(image_emb[i]).any():
            _fail(errors, i, f"missing '{column}' value", strict)
    unique = sorted(set(paths.values()))
    ref_emb, ref_err = scorer.try_embed_images(unique)
    index = {p: k for k, p in enumerate(unique)}
    for i, p in paths.items():
        k = index[p]
        if ref_err[k] is not None:
            _fail(errors, i, f"reference image: {ref_err[k]}", strict)
        elif image_emb is not None and not np.isnan(image_emb[i]).any():
            out[i] = float(np.dot(image_emb[i], ref_emb[k]))
    return out


def _best_reference_cosine(manifest: Manifest, scorer: Scorer, column: str, errors: list[str | None],
                           strict: bool) -> np.ndarray:
    """max over a row's reference captions of cos(prompt, reference), both CLIP text embeddings."""
    n = len(manifest.rows)
    out = np.full(n, np.nan)
    refs: dict[int, list[str]] = {}
    for i, r in enumerate(manifest.rows):
        if r.error or not isinstance(r.prompt, str):
            continue
        try:
            refs[i] = parse_reference_texts(r.fields.get(column))
        except ValueError as exc:
            _fail(errors, i, f"'{column}': {exc}", strict)
    texts = sorted({t for i, rs in refs.items() for t in rs} | {manifest.rows[i].prompt for i in refs})
    if not texts:
        return out
    emb = dict(zip(texts, scorer.embed_texts(texts)))
    for i, rs in refs.items():
        cand = emb[manifest.rows[i].prompt]
        out[i] = max(float(np.dot(cand, emb[t])) for t in rs)
    return out

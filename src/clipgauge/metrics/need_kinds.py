"""The built-in need kinds (:mod:`.needs`): embeddings of the rows' prompts and text columns, of the rows' images
and of reference images, and the decoded image itself.

Each distinct prompt, text and reference image is embedded once per batch by each model (and kept across batches
by the model's caches); each row's own image is embedded by the image streams (:mod:`clipgauge.pipeline.stream`).
*context* is the run's :class:`~clipgauge.pipeline.plan.ScoringPlan`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ..scoring.reference import parse_reference_texts
from .base import MetricBatch, Need
from .language import given_languages
from .needs import AFTER, IMAGES, ROWS, NeedKind

#: distinct reference images whose embeddings are kept between batches (per model)
REFERENCE_CACHE = 4096


class TextEmbedding(NeedKind):
    """``text_embedding``: the rows' own prompts (a bad prompt blocks the row's image), or a text column."""

    name = "text_embedding"
    phase = ROWS

    def blocks(self, need: Need) -> bool:
        return need.own_row

    def compute(self, context: Any, need: Need, batch: MetricBatch) -> None:
        if need.own_row:
            _prompt_embeddings(context, need, batch.rows, batch)
        else:
            _text_column(context, need, batch.rows, batch)


class ImageEmbedding(NeedKind):
    """``image_embedding``: each row's own image, streamed through the model (its images phase), or the images a
    column names (after the rows' own images)."""

    name = "image_embedding"
    phase = IMAGES
    decoded = False  # alone, the model's own decode threads read the sources

    def phase_of(self, need: Need) -> str:
        return IMAGES if need.own_row else AFTER

    def compute(self, context: Any, need: Need, batch: MetricBatch) -> None:
        _reference_images(context, need, batch.rows, batch)

    def stream(self, context: Any, need: Need, images: Iterable[Any]) -> Iterator[tuple[Any, str | None]]:
        return context.embedder(need.model).stream_image_embeddings(images)

    def timed(self, context: Any, need: Need, count: int) -> AbstractContextManager[Any]:
        return context.timings.embedding(need.model, "image", count, context.embedder(need.model).device)

    def collect(self, context: Any, need: Need, n: int, at: Sequence[int],
                items: Sequence[tuple[Any, str | None]]) -> np.ndarray:
        emb = np.full((n, context.embedding_dim(need.model)), np.nan, dtype=np.float32)
        for i, (e, _) in zip(at, items):
            if e is not None:
                emb[i] = e
        return emb


class Image(NeedKind):
    """``image``: the decoded RGB ``PIL.Image`` of each row (None where it could not be read)."""

    name = "image"
    phase = IMAGES

    def of_image(self, image: Any) -> Any:
        return image


def _prompt_embeddings(plan: Any, need: Need, rows: Sequence[Any], batch: MetricBatch) -> None:
    """The rows' own prompts, each distinct one embedded once. A prompt that is missing, not text, in a bad
    language, or refused by the tokenizer or the text encoder is that row's error (the others are embedded).
    The rows' languages (:func:`~.language.given_languages`) are read by the encoders that tokenise by language."""
    from ..scoring.texts import prompt_problem  # the one definition (the text side imports torch)

    n = len(rows)
    errors = [None if r.error else prompt_problem(r.prompt) for r in rows]
    ok = [i for i, r in enumerate(rows) if r.error is None and errors[i] is None]
    prompts = [rows[i].prompt for i in ok]
    scorer = plan.embedder(need.model)
    with plan.timings.embedding(need.model, "text", len(set(prompts)), scorer.device):
        got, flags, bad = scorer.embed_prompt_rows(prompts, given_languages(rows, ok))
    emb = np.full((n, plan.embedding_dim(need.model)), np.nan, dtype=np.float32)  # after: the width is known then
    truncated = np.zeros(n, dtype=bool)
    if ok and got.shape[1] == emb.shape[1]:  # rows without an embedding are NaN in got too
        at = np.asarray(ok)
        emb[at], truncated[at] = got, flags
    if any(bad):
        for j, e in enumerate(bad):
            if e is not None:
                errors[ok[j]] = e
    batch.values[need], batch.errors[need], batch.truncated[need] = emb, errors, truncated


def _text_column(plan: Any, need: Need, rows: Sequence[Any], batch: MetricBatch) -> None:
    """Texts from a column (one, or with ``many`` a list / JSON array per row), embedded once each. A text the
    model refuses is the error of the rows that hold it."""
    from ..scoring.texts import prompt_problem

    n = len(rows)
    texts: list[list[str] | None] = [None] * n
    errors: list[str | None] = [None] * n
    for i, r in enumerate(rows):
        if r.error is not None or prompt_problem(r.prompt):
            continue
        try:
            found = parse_reference_texts(r.fields.get(need.column))
            texts[i] = found if need.many else found[:1]
        except ValueError as exc:
            errors[i] = f"'{need.column}': {exc}"
    distinct = sorted({t for ts in texts if ts for t in ts})
    failed: dict[str, str] = {}
    found = plan.embedder(need.model).texts.keyed_table(distinct, errors=failed) if distinct else {}
    table = {t: e for t, (e, _) in found.items()}
    for i, ts in enumerate(texts if failed else ()):
        bad = next((failed[t] for t in ts or () if t in failed), None)
        if bad is not None:
            errors[i], texts[i] = f"'{need.column}': {bad}", None
    if need.many:
        batch.values[need] = [None if ts is None else np.stack([table[t] for t in ts]) for ts in texts]
    else:
        emb = np.full((n, plan.embedding_dim(need.model)), np.nan, dtype=np.float32)
        for i, ts in enumerate(texts):
            if ts:
                emb[i] = table[ts[0]]
        batch.values[need] = emb
    batch.errors[need] = errors


def _embed_images(plan: Any, spec: str, srcs: Sequence[Any]) -> tuple[np.ndarray, list[str | None]]:
    """Reference images (paths), embedded at once by model *spec*."""
    scorer = plan.embedder(spec)
    with plan.timings.embedding(spec, "image", len(srcs), scorer.device):
        emb, errs = scorer.try_embed_images(srcs)
    if emb.shape[1] == 0:
        emb = np.full((len(srcs), plan.embedding_dim(spec)), np.nan, dtype=np.float32)
    return emb, errs


def _reference_images(plan: Any, need: Need, rows: Sequence[Any], batch: MetricBatch) -> None:
    """Images named by a column, resolved like the row's image; each distinct one embedded once (and kept)."""
    n = len(rows)
    paths: list[Any] = [None] * n
    errors: list[str | None] = [None] * n
    for i, r in enumerate(rows):
        value = r.fields.get(need.column)
        if isinstance(value, str) and value.strip():
            paths[i] = plan.resolve_path(value)
        elif r.error is None:
            errors[i] = f"missing '{need.column}' value"
    cache = plan.reference_cache(need)
    wanted = {p for p in paths if p is not None}
    if len(cache) + len(wanted - set(cache)) > REFERENCE_CACHE:
        cache.clear()  # bounded: a reference seen again later is simply embedded again
    todo = sorted(wanted - set(cache))
    if todo:
        emb, errs = _embed_images(plan, need.model, todo)
        for p, e, err in zip(todo, emb, errs):
            cache[p] = (e, err)
    out = np.full((n, plan.embedding_dim(need.model)), np.nan, dtype=np.float32)
    for i, p in enumerate(paths):
        if p is None:
            continue
        e, err = cache[p]
        if err is not None:
            errors[i] = f"reference image: {err}"
        else:
            out[i] = e
    batch.values[need], batch.errors[need] = out, errors

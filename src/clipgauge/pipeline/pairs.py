"""Image–prompt pairs through the one scoring step: :class:`Scorer` (``clipgauge.Scorer``) and :func:`score_pairs`.

A pair's score is the ``clip`` metric's ``cosine`` column (:mod:`clipgauge.metrics.clip`) as
:func:`~clipgauge.pipeline.score.score_stream` computes it for ``clipgauge score``: the same prompt checks, the same
image errors, the same metric object, so no number differs by path. The tracker, the Lightning callback and the
torchmetrics adapter score through here too (with more metrics: :class:`PairStep`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..encoders.registry import parse_model_spec
from ..errors import ModelLoadError, RowError
from ..metrics.base import Need
from ..metrics.registry import metric_class
from ..scoring.scorer import Embedder, PairScores
from ..sources.shards import SourceRow
from .plan import ERROR_COLUMN, ScoreOptions, ScoringPlan
from .score import score_stream

__all__ = ["PairScores", "PairStep", "Scorer", "score_pairs"]

#: the ``clip`` metric's columns read back as a pair's results
COSINE, TRUNCATED = "cosine", "truncated"


class PairStep:
    """The scoring step for image–prompt pairs scored by one loaded *embedder*: a :class:`ScoringPlan` of the ``clip``
    metric on the embedder's model (first, unsuffixed) plus any other *metrics* (specs as ``clipgauge score
    --metric`` takes them; a metric on the same model shares it), built once and reused for every call.

    *changes* are :class:`ScoreOptions` fields for the plan (``device``, ``precision`` of the other metrics' models);
    by default every setting is the embedder's. Prompts are a fixed list, not a dataset: no ``language`` metric.
    """

    def __init__(self, embedder: Embedder, metrics: Sequence[Any] = (), **changes: Any) -> None:
        spec = plan_key(embedder.model_spec)
        clip = (metric_class("clip"), {"model": spec})  # the registered clip metric, on this very model
        settings = embedder.settings.scorer_settings().with_(device=str(embedder.device),
                                                             precision=embedder.precision)
        options = ScoreOptions(metrics=(clip, *metrics), model=spec, language=False,
                               **{**vars(settings), **changes})
        self.embedder = embedder
        self.plan = ScoringPlan(options, embedders={spec: embedder}).load()
        import pyarrow as pa

        self.schema = self.plan.output_schema(pa.schema([]))
        self._image = Need("image_embedding", spec)

    def table(self, images: Sequence[Any], prompts: Sequence[Any], *, progress: Callable[[int], None] | None = None,
              keep_embeddings: bool = False) -> tuple[Any, np.ndarray | None]:
        """(the results as a ``pyarrow.Table`` in :attr:`schema`, one row per pair in order; with
        *keep_embeddings* the (N, D) float32 image embeddings, NaN rows where there is none, or None if no row
        has one). *prompts*: one per image."""
        rows = [SourceRow(i, f"image {i}", image=src, prompt=text)
                for i, (src, text) in enumerate(zip(images, prompts))]
        tables, kept = [], []
        for group, table in score_stream(self.plan, rows, self.schema, progress=progress):  # bounded groups
            tables.append(table)
            if keep_embeddings:
                kept.append(group.batch.values[self._image])
        import pyarrow as pa

        out = pa.concat_tables(tables) if len(tables) > 1 else tables[0] if tables else self.schema.empty_table()
        embeddings = np.concatenate(kept) if kept else None
        if embeddings is not None and np.isnan(embeddings).all():
            embeddings = None
        return out, embeddings

    def pairs(self, images: Sequence[Any], prompts: Sequence[Any] | str, *, strict: bool = False,
              progress: Callable[[int], None] | None = None, keep_embeddings: bool = False) -> PairScores:
        """:func:`score_pairs` with this step's plan."""
        n = len(images)
        prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise ValueError(f"{n} images but {len(prompts)} prompts")
        table, embeddings = self.table(images, prompts, progress=progress, keep_embeddings=keep_embeddings)
        errors: list[str | None] = table.column(ERROR_COLUMN).to_pylist()
        if strict:
            bad = next((i for i, e in enumerate(errors) if e), None)
            if bad is not None:
                raise RowError(errors[bad], bad)
        cosine = table.column(COSINE).to_numpy(zero_copy_only=False).astype(np.float64)
        truncated = table.column(TRUNCATED).to_numpy(zero_copy_only=False).astype(bool)
        return PairScores(cosine=cosine, truncated=truncated, error=errors, image_embeddings=embeddings)


def plan_key(spec: str) -> str:
    """The name a loaded model goes by in a pair step's plan: its spec, or for an :class:`~clipgauge.encoders.Encoder`
    made by hand whose spec is no model spec (nothing is loaded by it), the same text as an ``hf:`` spec."""
    try:
        parse_model_spec(spec)
    except ModelLoadError:
        return f"hf:{spec}"
    return spec


def score_pairs(embedder: Embedder, images: Sequence[Any], prompts: Sequence[Any] | str, *, strict: bool = False,
                progress: Callable[[int], None] | None = None, keep_embeddings: bool = False) -> PairScores:
    """Score every pair of *images* and *prompts* (one per image, or one string for all) with *embedder*'s model,
    recording a short reason for each one that cannot be scored.

    A ``None`` image or prompt, a non-text prompt, a prompt the tokenizer or text encoder refuses (each is tried
    alone) or an undecodable image gives an ``error`` and a NaN cosine (in [-1, 1] otherwise) for that row; other
    rows are unaffected. With ``strict=True`` the first such row raises :class:`RowError` instead. With
    ``keep_embeddings`` the image embeddings are returned too. *progress* is called with counts of rows done.
    """
    step = getattr(embedder, "_pair_step", None)
    if step is None or step.embedder is not embedder:
        step = PairStep(embedder)
        embedder._pair_step = step  # type: ignore[attr-defined]  # built once per model: reused by later calls
    return step.pairs(images, prompts, strict=strict, progress=progress, keep_embeddings=keep_embeddings)


class Scorer(Embedder):
    """Score how well images follow their prompts with a CLIP model (``clipgauge.Scorer``).

    A :class:`~clipgauge.scoring.scorer.Embedder` (the model, loaded once: ``embed_images``, ``embed_texts`` …)
    whose scores are computed by the ``clip`` metric through the scoring step of ``clipgauge score``.

    Args:
        model: a model spec (``openai/clip-vit-large-patch14`` — the default, as in torchmetrics —,
            ``hf:DIR``, ``open_clip:ARCH:PRETRAINED``, ``open_clip:hf-hub:ORG/NAME``, ``demo``) or an
            :class:`~clipgauge.encoders.Encoder`.
        settings, prefetch, keyword arguments: the model's settings (``device``, ``batch_size``, ``precision``,
            ``num_workers``, ``prompt_prefix``, ``max_image_pixels``, ``max_image_bytes``, ``trust_remote_code``,
            ``cache_dir``, ``fast_decode``, ``decode``, ``max_cached_prompts``), declared once in
            :class:`~clipgauge.scoring.settings.ScorerSettings`; see :class:`~clipgauge.scoring.scorer.Embedder`.
    """

    def score(self, images: Sequence[Any], prompts: Sequence[str] | str) -> np.ndarray:
        """Cosine similarity (float32, in [-1, 1]) of each image with its prompt.

        *images*: paths, bytes, PIL images, or uint8 (0..255) / float ([0, 1]) arrays or tensors.
        *prompts*: one string per image, or a single string for all. Raises :class:`RowError` at the
        first pair that cannot be scored; use :meth:`score_pairs` to get errors per row instead.
        """
        return self.score_pairs(list(images), prompts, strict=True).cosine.astype(np.float32)

    def score_pairs(self, images: Sequence[Any], prompts: Sequence[Any] | str, *, strict: bool = False,
                    progress: Callable[[int], None] | None = None, keep_embeddings: bool = False) -> PairScores:
        """:func:`score_pairs` with this model: per row the cosine (NaN on error), ``truncated`` and ``error``."""
        return score_pairs(self, images, prompts, strict=strict, progress=progress, keep_embeddings=keep_embeddings)

"""``clip_chunks``: long prompts scored in pieces — a different metric from the CLIP score.

A prompt longer than the model's text context (77 tokens for most CLIPs) is split at sentence, then clause
boundaries into pieces that fit, each tokenised with its own start and end tokens
(:func:`clipgauge.scoring.prompt_chunks.split_prompt`, using the model's own tokenizer to count). Each piece is
embedded by the run's CLIP and compared with the image; the row's value is::

    chunks_mean_cosine = mean_k cos(image, piece_k)      (reduce=mean, the default)
    chunks_max_cosine  = max_k  cos(image, piece_k)      (reduce=max)

a cosine in [-1, 1]. A prompt that fits is one piece, the whole prompt: its value is the ``clip`` cosine exactly
(the same embedding). The run's ``--prompt-prefix`` is put before the prompt before it is split, so only the first
piece carries it. Columns (``P`` = ``chunks_mean`` or ``chunks_max``): ``P_cosine``, ``P_pieces`` (how many
pieces, 1 when not split) and ``P_shift`` (``P_cosine`` minus the truncated prompt's cosine, the ``clip``
cosine; 0 when not split). The summary says how many rows were split and, on those rows, how far the chunked
value moves from the truncated one.

``--long-prompt chunks-mean`` / ``chunks-max`` adds this metric next to ``clip``, which stays the standard
(truncated) CLIP score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from ..scoring.prompt_chunks import split_prompt
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot
from .clip_iqa import embed_prompts

REDUCTIONS = ("mean", "max")
#: ``--long-prompt`` values and the ``clip_chunks`` reduction each adds (None: only the standard CLIP score)
LONG_PROMPT_STRATEGIES = {"truncate": None, "chunks-mean": "mean", "chunks-max": "max"}
#: distinct pieces whose embeddings are kept between batches
PIECE_CACHE = 100_000

DEFINITION = ("the prompt (after the prompt prefix) split at sentence, then clause (, ; :), then conjunction, then "
              "word boundaries into pieces that fit the model's text context with start and end tokens, packed "
              "greedily in order; each piece embedded alone (L2-normalised); value = {reduce} over pieces of "
              "cos(image, piece). A prompt that fits is one piece (= the clip cosine). Not the CLIP score.")


def long_prompt_metric(strategy: str) -> str | None:
    """The metric spec ``--long-prompt STRATEGY`` adds (``clip_chunks:reduce=mean``…), None for ``truncate``;
    :class:`UsageError` for an unknown strategy."""
    if strategy not in LONG_PROMPT_STRATEGIES:
        raise UsageError(f"unknown long-prompt strategy '{strategy}' (choose from "
                         f"{', '.join(LONG_PROMPT_STRATEGIES)})", cli=f"--long-prompt must be one of "
                         f"{', '.join(LONG_PROMPT_STRATEGIES)} (got '{strategy}')")
    reduce = LONG_PROMPT_STRATEGIES[strategy]
    return None if reduce is None else f"clip_chunks:reduce={reduce}"


class ClipChunks(Metric):
    name = "clip_chunks"
    summary = ("long prompts in pieces: mean or max cosine of the image and each context-sized piece of the "
               "prompt (not the CLIP score)")
    options = {"model": "CLIP model spec (default: --model)",
               "reduce": "mean (default) or max of the piece cosines"}
    inherits = ("model",)
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        self.reduce = str(self.config.get("reduce") or "mean")
        if self.reduce not in REDUCTIONS:
            raise UsageError(f"clip_chunks: unknown reduce '{self.reduce}' (choose from {', '.join(REDUCTIONS)})")
        self.prefix = f"chunks_{self.reduce}"
        self._image = Need("image_embedding", self.model)
        self._text = Need("text_embedding", self.model)
        self._scorer: Any = None
        self._fits: Any = None
        self._pieces: dict[str, list[str]] = {}
        self._embedded: dict[str, np.ndarray] = {}

    def needs(self) -> list[Need]:
        return [self._image, self._text]

    def columns(self) -> list[Column]:
        p = self.prefix
        return [
            Column(f"{p}_cosine", range=(-1.0, 1.0), unit="cosine",
                   description=f"{self.reduce} over the prompt's context-sized pieces of cos(image, piece); equals "
                               "the clip cosine where the prompt fits (not the CLIP score)"),
            Column(f"{p}_pieces", type="int64", higher_is_better=None, summarize=False,
                   description="how many pieces the prompt was split into (1: it fits the context)"),
            Column(f"{p}_shift", range=(-2.0, 2.0), unit="cosine", higher_is_better=None, summarize=False,
                   description=f"{p}_cosine minus the truncated prompt's cosine (the clip cosine); 0 when not split"),
        ]

    def setup(self, context: Any) -> None:
        self._scorer = context.embedder(self.model)
        self._fits = fits_function(self._scorer.encoder)

    def _split(self, text: str) -> list[str]:
        if text not in self._pieces:
            if len(self._pieces) > PIECE_CACHE:
                self._pieces.clear()
            self._pieces[text] = split_prompt(text, self._fits)
        return self._pieces[text]

    def compute(self, batch: MetricBatch) -> MetricOutput:
        if self._scorer is None:
            raise RuntimeError("clip_chunks: setup() was not called")
        image, text = batch.values[self._image], batch.values[self._text]
        truncated, errors = batch.truncated[self._text], batch.errors[self._text]
        base = unit_vectors_dot(image, text)
        n = len(batch)
        cosine, shift = base.copy(), np.where(np.isnan(base), np.nan, 0.0)
        pieces: list[int | None] = [None if e or r.error else 1 for r, e in zip(batch.rows, errors)]
        split = {i: self._split(self._scorer.prompt_prefix + batch.rows[i].prompt)
                 for i in range(n) if pieces[i] is not None and truncated[i]}
        todo = sorted({p for ps in split.values() for p in ps} - set(self._embedded))
        if todo:
            if len(self._embedded) + len(todo) > PIECE_CACHE:
                self._embedded.clear()
                todo = sorted({p for ps in split.values() for p in ps})
            self._embedded.update(zip(todo, embed_prompts(self._scorer, todo)))
        reduce = np.mean if self.reduce == "mean" else np.max
        for i, ps in split.items():
            pieces[i] = len(ps)
            if np.isnan(base[i]):
                continue
            cosines = [float(np.dot(image[i], self._embedded[p])) for p in ps]
            cosine[i] = float(reduce(cosines))
            shift[i] = cosine[i] - base[i]
        p = self.prefix
        return MetricOutput({f"{p}_cosine": cosine, f"{p}_pieces": pieces, f"{p}_shift": shift})

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """The statistics of ``P_cosine`` (under its name) and, under ``P``: ``rows_split`` (rows whose prompt was
        split), and on those rows ``mean_abs_shift``, ``max_abs_shift`` and ``mean_shift`` (cosine units)."""
        p = self.prefix
        out = super().summarize(values, confidence)
        pieces = np.asarray(values[f"{p}_pieces"], dtype=np.float64)
        shift = np.asarray(values[f"{p}_shift"], dtype=np.float64)
        on = (pieces > 1) & ~np.isnan(shift)
        moved = shift[on]
        nan = float("nan")
        out[p] = {"rows_split": int(np.sum(pieces > 1)), "rows_scored_split": int(on.sum()),
                  "max_pieces": int(np.nanmax(pieces)) if np.any(~np.isnan(pieces)) else 0,
                  "mean_abs_shift": float(np.abs(moved).mean()) if moved.size else nan,
                  "max_abs_shift": float(np.abs(moved).max()) if moved.size else nan,
                  "mean_shift": float(moved.mean()) if moved.size else nan,
                  "shift_definition": f"{p}_cosine - clip cosine (truncated prompt), on the rows that were split"}
        return out

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "reduce": self.reduce,
                "definition": DEFINITION.format(reduce=self.reduce),
                "note": "a different metric from the CLIP score (clip), which truncates the prompt to the context"}


def fits_function(encoder: Any) -> Callable[[str], bool]:
    """``fits(text)``: whether *encoder* reads *text* whole, i.e. ``not encoder.tokenize([text]).truncated[0]``.

    Counted by the encoder's own :meth:`~clipgauge.encoders.Encoder.token_counts` (what its ``truncated`` flag
    compares), one tokenizer call and no padded tensors: about 3x faster than :meth:`tokenize`, and splitting asks
    this once per candidate piece. An encoder that cannot count (and one that needs each prompt's language) is
    asked through :meth:`tokenize`.
    """
    n = int(encoder.context_length)
    slow = lambda text: not encoder.tokenize([text]).truncated[0]  # noqa: E731
    if getattr(encoder, "needs_language", False):
        return slow

    def fits(text: str) -> bool:
        counts = encoder.token_counts([text])
        return counts[0] <= n if counts is not None else slow(text)

    return fits

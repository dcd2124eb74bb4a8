"""Score a batch of source rows into result records: the one scoring step both engines share.

The local engine calls it in-process; the Ray engine calls it inside each actor. Same code, same
scorer settings → the same scores, bit for bit, whichever engine (and whichever batch split) ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..scoring.scales import to_scale
from ..scoring.scorer import Scorer
from ..sources.shards import ID_COLUMNS, SourceRow

_RESERVED = set(ID_COLUMNS) | {"score", "cosine", "truncated", "error", "image_embedding", "text_embedding"}


@dataclass
class ScoredRows:
    """Result records (dicts) in row order, and with embeddings (float32 (N, D), NaN rows where none)."""

    records: list[dict[str, Any]]
    image_embeddings: np.ndarray | None = None
    text_embeddings: np.ndarray | None = None


def embedding_dim(scorer: Scorer) -> int:
    """The model's embedding width D (encodes one empty prompt)."""
    return int(scorer.embed_texts([""]).shape[1])


def score_rows(scorer: Scorer, rows: Sequence[SourceRow], *, scale: str = "cosine",
               embeddings_dim: int | None = None) -> ScoredRows:
    """Score *rows* (none of them placeholders). ``score`` is in *scale*, ``cosine`` the raw cosine in [-1, 1].

    A row already broken in the source keeps its error. With *embeddings_dim* the L2-normalised image and
    text embeddings (the text one of ``prompt_prefix + prompt``) come back too.
    """
    images = [None if r.error else r.image for r in rows]
    prompts = [None if r.error else r.prompt for r in rows]
    keep = embeddings_dim is not None
    result = scorer.score_pairs(images, prompts, keep_embeddings=keep)
    score = to_scale(result.cosine, scale)
    records = []
    for r, s, c, t, e in zip(rows, score, result.cosine, result.truncated, result.error):
        rec: dict[str, Any] = {"row_id": r.index, "row_source": r.source}
        rec.update((k, v) for k, v in r.fields.items() if k not in _RESERVED)
        ok = not np.isnan(c)
        rec.update(score=float(s) if ok else None, cosine=float(c) if ok else None, truncated=bool(t),
                   error=r.error or e)
        records.append(rec)
    out = ScoredRows(records)
    if keep:
        n = len(rows)
        out.image_embeddings = (result.image_embeddings if result.image_embeddings is not None
                                else np.full((n, embeddings_dim), np.nan, dtype=np.float32))
        out.text_embeddings = np.full((n, embeddings_dim), np.nan, dtype=np.float32)
        texts = sorted({p for p in prompts if isinstance(p, str)})
        if texts:
            table = dict(zip(texts, scorer.embed_texts(texts)))
            for i, p in enumerate(prompts):
                if isinstance(p, str):
                    out.text_embeddings[i] = table[p]
    return out

"""Retrieval as pure numpy: a running top-k over a gallery streamed in chunks, and recall@k.

Cosines are in [-1, 1] (rows are unit vectors). Memory stays bounded for any gallery size: a query keeps only its k
best (cosine, id) pairs, and each chunk costs (queries × chunk rows) cosines; no queries × gallery matrix exists.

recall@k follows LAION's CLIP_benchmark (``clip_benchmark/metrics/zeroshot_retrieval.py``): a query is a hit
when at least one of its true matches is among its k most similar items; recall@k is the fraction of queries
that are hits, in [0, 1]. Text → image: each text's images are its true matches; image → text: each image's
caption(s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class StreamingTopK:
    """The *k* gallery items most similar to each of *queries* (Q, D), over gallery chunks given to
    :meth:`update`. Equal cosines at the k-th place are kept in no particular order."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.queries = np.asarray(queries, dtype=np.float32)
        self.k = int(k)
        q = len(self.queries)
        self.scores = np.full((q, 0), -np.inf, dtype=np.float64)
        self.ids = np.zeros((q, 0), dtype=np.int64)

    def update(self, gallery: np.ndarray, ids: Sequence[int] | np.ndarray) -> None:
        """Take a chunk of gallery rows (C, D) with their ids (C,); NaN rows (no embedding) are ignored."""
        gallery = np.asarray(gallery, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        keep = ~np.isnan(gallery).any(axis=1) if gallery.size else np.zeros(len(ids), dtype=bool)
        if not keep.any() or len(self.queries) == 0:
            return
        sims = (self.queries @ gallery[keep].T).astype(np.float64)  # (Q, C) cosines of this chunk only
        scores = np.concatenate([self.scores, sims], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids[keep], sims.shape)], axis=1)
        if scores.shape[1] > self.k:  # keep the k best: argpartition is linear in the chunk width
            part = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores = np.take_along_axis(scores, part, axis=1)
            all_ids = np.take_along_axis(all_ids, part, axis=1)
        self.scores, self.ids = scores, all_ids

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cosines, ids)``, each (Q, ≤k), every row from most to least similar (equal cosines: lower id
        first)."""
        order = np.lexsort((self.ids, -self.scores), axis=1)
        return np.take_along_axis(self.scores, order, axis=1), np.take_along_axis(self.ids, order, axis=1)


def hits_from_topk(top_ids: np.ndarray, positive: Sequence[set[int]], ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Per k, whether each query has at least one of its *positive* ids among its first k *top_ids*."""
    out = {}
    for k in ks:
        out[k] = np.array([bool(positive[q] & set(top_ids[q, :k].tolist())) for q in range(len(top_ids))])
    return out


def hits_from_ranks(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Per k, whether each query's best true match ranks within k (*ranks*: 1-based rank of its best true
    match, i.e. 1 + the number of items more similar than it)."""
    return {k: np.asarray(ranks) <= k for k in ks}


def best_true_rank(cosines: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """1-based rank of each query's most similar true match among all items: *cosines* (Q, M), *positives* a
    bool (Q, M) mask; 1 + the number of items strictly more similar than it. Queries without a match get M + 1."""
    best = np.where(positives, cosines, -np.inf).max(axis=1)
    return 1 + (cosines > best[:, None]).sum(axis=1)


def recall(hits: dict[int, np.ndarray]) -> dict[str, float]:
    """``{"k": fraction of hits}`` (NaN without queries)."""
    return {str(k): float(h.mean()) if h.size else float("nan") for k, h in hits.items()}

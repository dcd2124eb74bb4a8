"""Per-prompt diversity: the mean pairwise cosine distance among the images of one group (the math of the
``diversity`` metric, and its summary over groups for ``compare`` and the report).

    diversity(group) = mean over pairs i < j of (1 - cos(e_i, e_j)),  in [0, 2]

with ``e`` L2-normalised image embeddings; NaN for a group of fewer than two images.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from .summary import describe


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Mean of ``1 - cos`` over the n(n-1)/2 pairs of the rows of *embeddings* ((n, D), unit vectors); NaN for
    n < 2. In [0, 2]. Computed as ``(n² - ‖Σ e‖²) / (n(n-1))`` in float64 (the same number, O(nD))."""
    e = np.asarray(embeddings, dtype=np.float64)
    n = len(e)
    if n < 2:
        return float("nan")
    total = e.sum(axis=0)
    off_diagonal = float(total @ total) - float(np.einsum("ij,ij->", e, e))  # sum over i != j of cos
    return float(np.clip(1.0 - off_diagonal / (n * (n - 1)), 0.0, 2.0))


def group_diversity(embeddings: Sequence[np.ndarray | None], groups: Sequence[Hashable]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the diversity of its group and the number of images it was computed from (float64; NaN where a
    row has no embedding or no group key, or its group has fewer than two images)."""
    members: dict[Hashable, list[int]] = {}
    for i, (e, key) in enumerate(zip(embeddings, groups)):
        if e is not None and key is not None:
            members.setdefault(key, []).append(i)
    values = np.full(len(groups), np.nan)
    counts = np.full(len(groups), np.nan)
    for idx in members.values():
        counts[idx] = len(idx)
        if len(idx) > 1:
            values[idx] = mean_pairwise_cosine_distance(np.stack([embeddings[i] for i in idx]))
    return values, counts


def per_group_values(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One value per group from the per-row run columns (each group's value repeated on its ``count`` rows):
    the rows of each distinct ``(value, count)``, divided by ``count``, copies of the value."""
    ok = ~np.isnan(values) & ~np.isnan(counts) & (counts > 1)
    out: list[float] = []
    pairs, rows = np.unique(np.stack([values[ok], counts[ok]], axis=1), axis=0, return_counts=True) if ok.any() \
        else (np.zeros((0, 2)), np.zeros(0, dtype=int))
    for (value, count), n_rows in zip(pairs, rows):
        out.extend([float(value)] * int(round(n_rows / count)))
    return np.array(out, dtype=np.float64)


def diversity_of_records(records: Iterable[dict[str, Any]], *, confidence: float = 0.95
                         ) -> dict[str, Any] | None:
    """The run-level diversity of result rows that hold the ``diversity`` metric's run columns: statistics
    (:func:`~clipgauge.stats.summary.describe`: mean, CI of the mean, …) over one value per group with two
    images or more, with ``groups`` (their count). None when the rows have no ``diversity`` column."""
    rows = list(records)
    if not any("diversity" in r for r in rows):
        return None

    def number(v: Any) -> float:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")

    values = np.array([number(r.get("diversity")) for r in rows], dtype=np.float64)
    counts = np.array([number(r.get("diversity_images")) for r in rows], dtype=np.float64)
    per_group = per_group_values(values, counts)
    return {**describe(per_group, confidence=confidence), "groups": int(per_group.size)}

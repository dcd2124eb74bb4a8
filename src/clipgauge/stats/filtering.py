"""Dataset filtering by CLIP score: a fixed threshold (LAION) or the top fraction (DataComp).

* ``min_score``: keep rows whose score is ≥ the threshold, in the chosen scale. LAION-5B kept image–text
  pairs with cosine ≥ 0.28 under OpenAI ViT-B/32 (0.26 for other languages; LAION-400M used 0.3).
  Thresholds only carry over between models of the same family: cosines of different CLIPs differ.
* ``top_fraction``: keep the best ``ceil(f · n)`` scored rows (DataComp's "CLIP score top 30%" baseline
  is f = 0.3); ties at the cut keep the input order. The effective threshold (lowest kept score) is reported.

Rows that could not be scored are never kept, and are counted apart from rows dropped for their score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .records import Record, scores


@dataclass
class FilterResult:
    """Which rows pass. ``kept`` are row positions in input order; scores and thresholds in score units."""

    mode: str
    scale: str
    column: str | None
    min_score: float | None
    top_fraction: float | None
    rows: int
    kept: list[int]
    dropped_low: int
    unscored: int
    threshold: float

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def dropped(self) -> int:
        """All rows not kept: those below the threshold and those without a score."""
        return self.rows - self.n_kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "scale": self.scale, "column": self.column or "cosine",
            "min_score": self.min_score, "top_fraction": self.top_fraction, "rows": self.rows,
            "kept": self.n_kept, "dropped": self.dropped, "dropped_low_score": self.dropped_low,
            "unscored": self.unscored, "kept_fraction": self.n_kept / self.rows if self.rows else math.nan,
            "threshold": self.threshold,
        }


def filter_rows(
    records: Sequence[Record],
    *,
    min_score: float | None = None,
    top_fraction: float | None = None,
    scale: str = "cosine",
    column: str | None = None,
    higher_is_better: bool = True,
) -> FilterResult:
    """Apply exactly one of *min_score* (in *scale*; rows scoring at least it are kept) or *top_fraction* (in
    (0, 1]: the best-scoring fraction, the lowest scores where lower is better) to *records*."""
    if (min_score is None) == (top_fraction is None):
        raise UsageError("give exactly one of a minimum score or a top fraction",
                         cli="give exactly one of --min-score or --top-fraction")
    if top_fraction is not None and not 0.0 < top_fraction <= 1.0:
        raise UsageError(f"the top fraction must be in (0, 1], got {top_fraction}",
                         cli=f"--top-fraction must be in (0, 1], got {top_fraction}")
    values = scores(records, scale=scale, column=column)
    scored = np.flatnonzero(~np.isnan(values))
    if min_score is not None:
        kept = scored[values[scored] >= min_score]
        threshold = float(min_score)
        mode = "min-score"
    else:
        k = math.ceil(top_fraction * scored.size - 1e-9)
        sign = 1.0 if higher_is_better else -1.0
        order = scored[np.argsort(-sign * values[scored], kind="stable")]
        kept = np.sort(order[:k])
        threshold = float(values[order[k - 1]]) if k else math.nan
        mode = "top-fraction"
    return FilterResult(
        mode=mode, scale=scale, column=column, min_score=min_score, top_fraction=top_fraction, rows=len(records),
        kept=[int(i) for i in kept], dropped_low=int(scored.size - kept.size), unscored=int(len(records) - scored.size),
        threshold=threshold,
    )

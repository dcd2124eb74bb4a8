"""Dataset filtering by CLIP score: a fixed threshold (LAION) or the top fraction (DataComp).

* ``min_score``: keep rows whose score is at least as good as the threshold, in the chosen scale: ≥ it, or ≤ it
  where lower is better (the ``angle`` scale, in degrees; a lower-is-better metric). LAION-5B kept image–text
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
from ..scoring.scales import check_scale, to_scale
from ..scoring.scales import higher_is_better as scale_higher_is_better
from .records import _MISSING as MISSING
from .records import SCALED_COLUMN, Record, as_float, has_error, scores


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
    #: how many rows were kept when they were streamed to an output rather than listed in ``kept``
    kept_count: int | None = None
    #: the score's direction: False where lower is better (the ``angle`` scale), thresholds then keep ≤
    higher_is_better: bool = True

    @property
    def n_kept(self) -> int:
        return len(self.kept) if self.kept_count is None else self.kept_count

    @property
    def dropped(self) -> int:
        """All rows not kept: those below the threshold and those without a score."""
        return self.rows - self.n_kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "scale": self.scale, "column": self.column or SCALED_COLUMN,
            "min_score": self.min_score, "top_fraction": self.top_fraction, "rows": self.rows,
            "kept": self.n_kept, "dropped": self.dropped, "dropped_low_score": self.dropped_low,
            "unscored": self.unscored, "kept_fraction": self.n_kept / self.rows if self.rows else math.nan,
            "threshold": self.threshold, "higher_is_better": self.higher_is_better,
        }


class FilterRule:
    """One filter decision, over Arrow batches (or arrays of scores) in input order: exactly one of *min_score* (in
    *scale*; rows scoring at least as well are kept: ≥ it, or ≤ it where lower is better) or *top_fraction* (in
    (0, 1]: the best ``ceil(f · n)`` scored rows, the highest where *higher_is_better*, else the lowest; ties at
    the cut kept in input order).

    A top fraction needs every score first (:meth:`prepare`, one float64 per row); then :meth:`keep` decides batch by
    batch. Rows without a score (an error, no value) are never kept. Scores in a scale (*column* None) take the
    scale's direction instead of *higher_is_better* (``angle``: lower is better).
    """

    def __init__(self, *, min_score: float | None = None, top_fraction: float | None = None, scale: str = "cosine",
                 column: str | None = None, higher_is_better: bool = True) -> None:
        if (min_score is None) == (top_fraction is None):
            raise UsageError("give exactly one of a minimum score or a top fraction",
                             cli="give exactly one of --min-score or --top-fraction")
        if top_fraction is not None and not 0.0 < top_fraction <= 1.0:
            raise UsageError(f"the top fraction must be in (0, 1], got {top_fraction}",
                             cli=f"--top-fraction must be in (0, 1], got {top_fraction}")
        check_scale(scale)
        if column is not None and scale != "cosine":
            raise UsageError("a score column's values are used as they are; they cannot be converted to another "
                             "scale", cli="--column uses a column's values as they are; it cannot be combined with "
                                          "--scale")
        self.min_score, self.top_fraction, self.scale, self.column = min_score, top_fraction, scale, column
        if column is None:
            higher_is_better = scale_higher_is_better(scale)
        self.higher_is_better = higher_is_better
        self.sign = 1.0 if higher_is_better else -1.0
        self.threshold = float(min_score) if min_score is not None else math.nan
        self._ties_left = 0
        self.rows = self.scored = self.kept = 0

    @property
    def needs_all_scores(self) -> bool:
        return self.top_fraction is not None

    def prepare(self, values: np.ndarray) -> None:
        """Find the cut of a top fraction from every row's score (*values*, NaN = unscored)."""
        scored = values[~np.isnan(values)] * self.sign
        k = math.ceil(self.top_fraction * scored.size - 1e-9)
        if k:
            cut = float(-np.partition(-scored, k - 1)[k - 1])  # the k-th best (sign-adjusted) score
            self.threshold = cut * self.sign
            self._ties_left = k - int(np.sum(scored > cut))

    def keep(self, values: np.ndarray) -> np.ndarray:
        """Which rows of the next batch (its scores, NaN = unscored) are kept."""
        ok = ~np.isnan(values)
        if self.min_score is not None:
            keep = ok & (values * self.sign >= self.threshold * self.sign)
        elif math.isnan(self.threshold):
            keep = np.zeros(values.size, dtype=bool)
        else:
            signed, cut = values * self.sign, self.threshold * self.sign
            keep = ok & (signed > cut)
            take = np.flatnonzero(ok & (signed == cut))[: max(0, self._ties_left)]
            keep[take] = True
            self._ties_left -= take.size
        self.rows += values.size
        self.scored += int(ok.sum())
        self.kept += int(keep.sum())
        return keep

    def result(self, kept: list[int] | None = None) -> FilterResult:
        """The counts so far, as a :class:`FilterResult` (*kept*: the kept row positions, when they were kept)."""
        mode = "min-score" if self.min_score is not None else "top-fraction"
        return FilterResult(mode=mode, scale=self.scale, column=self.column, min_score=self.min_score,
                            top_fraction=self.top_fraction, rows=self.rows, kept=kept if kept is not None else [],
                            dropped_low=self.scored - self.kept, unscored=self.rows - self.scored,
                            threshold=self.threshold, higher_is_better=self.higher_is_better,
                            kept_count=None if kept is not None else self.kept)


def batch_scores(table: Any, *, scale: str = "cosine", column: str | None = None) -> np.ndarray:
    """The scores of the rows of an Arrow batch as float64, NaN where a row has an error or no value: the rules of
    :func:`clipgauge.stats.records.scores` (numbers or their text, as CSV gives them; an ``error`` of ``""``,
    ``null`` … is no error), vectorised. :class:`UsageError` when the batch has no such column."""
    import pyarrow as pa

    name = column or SCALED_COLUMN
    if name not in table.column_names:
        if table.num_rows == 0:
            return np.zeros(0)
        hint = "" if column else " (is this a results file written by 'clipgauge score'?)"
        raise UsageError(f"results have no '{name}' column{hint}")
    col = table.column(name)
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        values = col.to_numpy().astype(np.float64, copy=True)
    else:
        values = np.array([as_float(v) for v in col.to_pylist()], dtype=np.float64)
    if "error" in table.column_names:
        values[_errors(table.column("error"))] = np.nan
    return values if column is not None else to_scale(values, scale)


def _errors(col: Any) -> np.ndarray:
    """Which rows have an error: a non-null error text (not ``""``/``null``/``none`` …), or ``True``."""
    import pyarrow as pa

    if pa.types.is_null(col.type):
        return np.zeros(len(col), dtype=bool)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        import pyarrow.compute as pc

        blank = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), value_set=pa.array(list(MISSING)))
        return (col.is_valid().to_numpy(zero_copy_only=False)
                & ~blank.fill_null(False).to_numpy(zero_copy_only=False))
    return np.array([has_error({"error": v}) for v in col.to_pylist()], dtype=bool)


def filter_rows(
    records: Sequence[Record],
    *,
    min_score: float | None = None,
    top_fraction: float | None = None,
    scale: str = "cosine",
    column: str | None = None,
    higher_is_better: bool = True,
) -> FilterResult:
    """Apply exactly one of *min_score* (in *scale*; rows scoring at least as well are kept: ≤ it where lower is
    better) or *top_fraction* (in
    (0, 1]: the best-scoring fraction, the lowest scores where lower is better) to *records*: the
    :class:`FilterRule` of every input, on the records' scores."""
    rule = FilterRule(min_score=min_score, top_fraction=top_fraction, scale=scale, column=column,
                      higher_is_better=higher_is_better)
    values = scores(records, scale=scale, column=column)
    if rule.needs_all_scores:
        rule.prepare(values)
    return rule.result([int(i) for i in np.flatnonzero(rule.keep(values))])

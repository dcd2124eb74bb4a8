"""Sweeps: the mean score at each value of a numeric setting (CFG scale, sampling steps, checkpoint step …).

:func:`sweep_table` groups the scored rows by the value of a numeric column and reports, per value, n, the
mean score, its standard deviation and a bootstrap CI of the mean, then the value where the mean
peaks and the *smallest* value whose mean lies within the peak's CI (the cheapest setting that is
statistically as good as the best one; for CFG often the more diverse choice).

With ``group_by`` (e.g. ``prompt_id``), images of one group at one value are averaged first, so each group
contributes one number per value and the CI is a bootstrap over groups: images of the same prompt are not
independent, and treating them as such would make the intervals too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..scoring.scales import higher_is_better as scale_higher_is_better
from .records import SCALED_COLUMN, Record, as_float, record_key, scores
from .summary import MeanCI


@dataclass
class SweepRow(MeanCI):
    """One value of the swept parameter: ``rows`` scored images, ``n`` units of the CI (images or groups)."""

    value: float
    rows: int


@dataclass
class Sweep:
    """The result of :func:`sweep_table`; scores in score units (cosine unless a scale says ×100 / ×2.5)."""

    param: str
    group_by: tuple[str, ...] | None
    scale: str
    column: str | None
    confidence: float
    rows: list[SweepRow]
    peak_value: float
    peak_mean: float
    peak_ci_low: float
    peak_ci_high: float
    plateau_value: float
    input_rows: int
    unscored: int
    no_value: int
    no_group: int
    higher_is_better: bool = True

    def table(self) -> list[dict[str, Any]]:
        """Rows as plain dicts (value, rows, n, mean, std, ci_low, ci_high, ci_method, is_peak, within_peak_ci)."""
        out = []
        for r in self.rows:
            d = r.to_dict()
            d["value"] = display_value(r.value)
            d["is_peak"] = r.value == self.peak_value
            inside = r.mean >= self.peak_ci_low if self.higher_is_better else r.mean <= self.peak_ci_high
            d["within_peak_ci"] = bool(inside) if not math.isnan(r.mean) else False
            out.append(d)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "rows"}
        d["group_by"] = list(self.group_by) if self.group_by else None
        d["column"] = self.column or SCALED_COLUMN
        d["peak_value"] = display_value(self.peak_value)
        d["plateau_value"] = display_value(self.plateau_value)
        d["rows"] = self.table()
        return d


def display_value(value: float) -> float | int:
    """``7.0`` → ``7``; other floats unchanged (NaN stays NaN)."""
    return int(value) if not math.isnan(value) and not math.isinf(value) and float(value).is_integer() else value


def sweep_table(
    records: Sequence[Record],
    param: str,
    *,
    group_by: Sequence[str] | None = None,
    scale: str = "cosine",
    column: str | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
) -> Sweep:
    """Mean score with a CI per value of the numeric column *param* (see the module docstring).

    Rows without a numeric *param*, without a score (errors) or, with *group_by*, without a group value
    are left out and counted. Raises :class:`UsageError` when *param* is missing or has no numeric value.
    Scores in a scale (*column* None) take the scale's direction instead of *higher_is_better* (``angle``: the
    peak is the smallest mean angle).
    """
    if column is None:
        higher_is_better = scale_higher_is_better(scale)
    if records and not any(param in r for r in records):
        raise UsageError(f"results have no '{param}' column to sweep over")
    values = scores(records, scale=scale, column=column)
    params = np.array([as_float(r.get(param)) for r in records], dtype=np.float64)
    no_value = int(np.count_nonzero(np.isnan(params)))
    if records and no_value == len(records):
        raise UsageError(f"column '{param}' has no numeric values")
    keys = [record_key(r, group_by) if group_by else () for r in records]
    no_group = sum(k is None for k in keys)
    has_key = np.array([k is not None for k in keys], dtype=bool)
    usable = np.flatnonzero(~np.isnan(params) & ~np.isnan(values) & has_key)
    unscored = int(np.count_nonzero(np.isnan(values)))

    rows = []
    for v in np.unique(params[usable]).tolist():
        idx = usable[params[usable] == v]
        if group_by:
            cells: dict[tuple[str, ...], list[float]] = {}
            for i in idx:
                cells.setdefault(keys[i], []).append(float(values[i]))
            units = np.array([np.mean(c) for c in cells.values()], dtype=np.float64)
        else:
            units = values[idx]
        rows.append(SweepRow(value=v, rows=len(idx), **MeanCI.of(units, confidence=confidence, seed=seed)))
    nan = float("nan")
    if rows:
        sign = 1.0 if higher_is_better else -1.0  # the peak is the best mean: the lowest where lower is better
        peak = max(rows, key=lambda r: sign * r.mean)  # first (smallest value) of equal best means
        bound = peak.ci_low if higher_is_better else peak.ci_high
        plateau = (next(r for r in rows if sign * r.mean >= sign * bound) if not math.isnan(bound) else peak)
        peak_stats = (peak.value, peak.mean, peak.ci_low, peak.ci_high, plateau.value)
    else:
        peak_stats = (nan, nan, nan, nan, nan)
    return Sweep(
        param=param, group_by=tuple(group_by) if group_by else None, scale=scale, column=column,
        confidence=confidence, rows=rows, peak_value=peak_stats[0], peak_mean=peak_stats[1],
        peak_ci_low=peak_stats[2], peak_ci_high=peak_stats[3], plateau_value=peak_stats[4],
        input_rows=len(records), unscored=unscored, no_value=no_value, no_group=no_group,
        higher_is_better=higher_is_better,
    )

"""Best-of-N: keep the highest-scoring images of each group (e.g. the N seeds generated per prompt).

For every group :func:`select_best` ranks the scored rows by score (ties keep the input order) and keeps
the top K, each with its ``margin`` to the next-ranked image of the group (how decisively it won, in score
units; null for the last image of a group). It also reports what choosing buys: per group the mean score
(what one random image of the group scores, the *expected* score) and the max (*best-of-N*), and over all
groups the mean gain ``max − mean`` with a bootstrap CI over groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..scoring.scales import higher_is_better as scale_higher_is_better
from .records import SCALED_COLUMN, Record, has_error, record_key, scores
from .summary import bootstrap_mean_ci

#: Columns added to each chosen row.
SELECT_COLUMNS = ("rank", "margin", "group_n")


@dataclass
class GroupSelection:
    """One group: its key, rows (``n``), scored rows, mean and max score, and the chosen row positions."""

    key: tuple[str, ...]
    n: int
    scored: int
    mean: float
    max: float
    chosen: list[int] = field(default_factory=list)
    chosen_scores: list[float] = field(default_factory=list)
    margins: list[float | None] = field(default_factory=list)

    higher_is_better: bool = True

    @property
    def gain(self) -> float:
        """How much better best-of-N is than the group's expected score (0 for a single image; NaN when nothing
        was scored); ``max`` is the best score (the lowest where lower is better)."""
        return (self.max - self.mean) if self.higher_is_better else (self.mean - self.max)


@dataclass
class Selection:
    """The result of :func:`select_best`. Scores and gains are in score units (cosine unless a scale says ×)."""

    group_by: tuple[str, ...]
    top: int
    scale: str
    column: str | None
    rows: int
    errors: int
    no_key: int
    groups: list[GroupSelection]
    expected: float
    best: float
    gain: float
    gain_ci_low: float
    gain_ci_high: float
    gain_ci_method: str
    higher_is_better: bool = True
    floors: list[tuple[str, float]] = field(default_factory=list)
    below_floor: int = 0

    @property
    def empty_groups(self) -> int:
        """Groups in which no row could be scored (nothing chosen)."""
        return sum(g.scored == 0 for g in self.groups)

    def chosen_records(self, records: Sequence[Record]) -> list[dict[str, Any]]:
        """The chosen rows of *records* (the list given to :func:`select_best`), best first within each group,
        with ``rank`` (1 = best), ``margin`` (score minus the next-ranked score in the group) and ``group_n``."""
        out = []
        for g in self.groups:
            for rank, (i, margin) in enumerate(zip(g.chosen, g.margins), start=1):
                row = dict(records[i])
                row.update(rank=rank, margin=margin, group_n=g.n)
                out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "groups"}
        d["group_by"] = list(self.group_by)
        d["column"] = self.column or SCALED_COLUMN
        d["n_groups"] = len(self.groups)
        d["empty_groups"] = self.empty_groups
        d["groups"] = [
            {"key": list(g.key), "n": g.n, "scored": g.scored, "mean": g.mean, "max": g.max, "gain": g.gain,
             "chosen": [{"row": i, "score": s, "margin": m} for i, s, m in zip(g.chosen, g.chosen_scores, g.margins)]}
            for g in self.groups
        ]
        return d


def select_best(
    records: Sequence[Record],
    *,
    group_by: Sequence[str] = ("prompt_id",),
    top: int = 1,
    scale: str = "cosine",
    column: str | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
    floors: Sequence[tuple[str, float]] = (),
) -> Selection:
    """Choose the *top* best-scoring rows of every *group_by* group of *records*.

    Rows with an error (or no score) are never chosen but count in their group's ``n``; rows missing a
    group column are counted in ``no_key``. Groups appear in order of first appearance. With
    ``higher_is_better=False`` the lowest scores are the best (``max`` is then the best, i.e. lowest, score and
    margins and gains stay positive for a decisive choice). *floors* ``(column, minimum)``: a row is chosen only
    when each such column holds a value ≥ its minimum (e.g. the best aesthetic image among those with a CLIP
    cosine ≥ 0.25); the others count in ``below_floor``. Scores in a scale (*column* None) take the scale's
    direction instead of *higher_is_better*: in ``angle`` the smallest angle is the best.
    """
    if column is None:
        higher_is_better = scale_higher_is_better(scale)
    if top < 1:
        raise UsageError("the number of rows to choose per group must be at least 1", cli="--top must be at least 1")
    group_by = tuple(group_by)
    values = scores(records, scale=scale, column=column).copy()
    below_floor = 0
    for name, minimum in floors:
        floor_values = scores(records, column=name)
        fails = ~(floor_values >= minimum) & ~np.isnan(values)  # NaN floor values fail too
        below_floor += int(np.count_nonzero(fails))
        values[fails] = np.nan
    sign = 1.0 if higher_is_better else -1.0
    members: dict[tuple[str, ...], list[int]] = {}
    no_key = 0
    for i, r in enumerate(records):
        k = record_key(r, group_by)
        if k is None:
            no_key += 1
        else:
            members.setdefault(k, []).append(i)
    if records and not members:
        raise UsageError(f"no row has a value in every group column ({', '.join(group_by)})")
    groups = []
    for k, idx in members.items():
        scored = [i for i in idx if not math.isnan(values[i])]
        order = sorted(scored, key=lambda i: -sign * values[i])  # stable: ties keep the input order
        s = values[order] if order else np.empty(0)
        chosen = order[:top]
        margins: list[float | None] = [
            float(sign * (s[j] - s[j + 1])) if j + 1 < len(order) else None for j in range(len(chosen))
        ]
        groups.append(GroupSelection(
            key=k, n=len(idx), scored=len(scored),
            mean=float(s.mean()) if s.size else math.nan, max=float(s[0]) if s.size else math.nan,
            chosen=chosen, chosen_scores=[float(x) for x in s[: len(chosen)]], margins=margins,
            higher_is_better=higher_is_better,
        ))
    means = np.array([g.mean for g in groups if g.scored], dtype=np.float64)
    maxes = np.array([g.max for g in groups if g.scored], dtype=np.float64)
    gains = sign * (maxes - means)
    low, high, method = bootstrap_mean_ci(gains, confidence=confidence, seed=seed)
    nan = float("nan")
    return Selection(
        group_by=group_by, top=top, scale=scale, column=column, rows=len(records),
        errors=sum(has_error(r) for r in records), no_key=no_key, groups=groups,
        expected=float(means.mean()) if means.size else nan, best=float(maxes.mean()) if maxes.size else nan,
        gain=float(gains.mean()) if gains.size else nan, gain_ci_low=low, gain_ci_high=high, gain_ci_method=method,
        higher_is_better=higher_is_better, floors=[(n, float(m)) for n, m in floors], below_floor=below_floor,
    )

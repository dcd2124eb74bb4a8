"""Compare several scored runs (models, checkpoints, settings) on the same prompts.

:func:`compare_runs` takes the records of two or more results files and returns a :class:`Comparison`:

* per run: rows, errors, n scored, mean and its 95% bootstrap CI;
* per pair of runs (each earlier run against each later one), matched on key columns: the paired
  statistics of :mod:`clipgauge.stats.paired` (mean difference A − B with a paired bootstrap CI, sign-flip
  p-value, win/tie/loss rates, units needed for 80% power), unmatched and unscored rows counted, and a
  sentence saying whether the difference is significant;
* the same per value of each breakdown column present (PartiPrompts' ``category`` and ``challenge``).

**Units.** With several images per prompt (key ``prompt_id,seed``) the images of one prompt are not
independent: a model that is bad at a prompt is bad at all its seeds. The paired differences are then
averaged per *cluster* (by default the key's first column, i.e. per prompt) and every statistic —
mean difference, CI, p-value, win rate ("share of prompts where A beats B"), units needed — is computed
over clusters. With a one-column key each matched pair is its own unit.

**Multiple comparisons.** With more than one comparison in a table (several run pairs, or groups × pairs
in a breakdown) significance is judged on Holm-adjusted p-values within that table, which keeps the chance
of any false "significant" in the table at α; the raw p-values are reported too. CIs are not adjusted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from ..errors import UsageError
from ..scoring.scales import higher_is_better as scale_higher_is_better
from .paired import N_RESAMPLES, PairedTest, cluster_means, holm, match_runs, paired_test
from .records import SCALED_COLUMN, Record, has_error, key_value, record_key, scores
from .summary import MeanCI

#: Columns broken down by default when present (PartiPrompts has both, DrawBench has ``category``).
DEFAULT_BREAKDOWN = ("category", "challenge")
#: ``cluster="auto"``: the key's first column when the key has several, else no clustering.
AUTO = "auto"


@dataclass
class RunStats(MeanCI):
    """One run (or one run within a group): rows, errors, and n scored with their mean and CI in score units."""

    name: str
    rows: int
    errors: int


@dataclass
class PairResult:
    """Run *a* against run *b* (differences a − b), overall or within one group.

    ``matched``: key-matched row pairs; ``unscored``: of those, pairs with an unscored side; ``pairs``: the
    scored pairs used; ``test.n``: the independent units they form (clusters, or pairs without clustering).
    """

    a: str
    b: str
    matched: int
    unscored: int
    pairs: int
    test: PairedTest
    p_adjusted: float
    significant: bool
    sentence: str
    unmatched: dict[str, Any] | None = None
    #: the run with the better mean difference in the score's direction (None: no difference or no data)
    better: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "test"}
        d.update(self.test.to_dict())
        return d


@dataclass
class Group:
    """One value of a breakdown column: per-run stats and the pairwise comparisons within it."""

    column: str
    value: str
    runs: list[RunStats]
    pairs: list[PairResult]


@dataclass
class Comparison:
    """Everything ``clipgauge compare`` reports; :meth:`to_dict` is its JSON form."""

    key: tuple[str, ...]
    cluster: tuple[str, ...] | None
    scale: str
    column: str | None
    confidence: float
    alpha: float
    power: float
    runs: list[RunStats]
    pairs: list[PairResult]
    breakdowns: dict[str, list[Group]] = field(default_factory=dict)
    #: the score's direction: False for a lower-is-better metric or scale (``angle``)
    higher_is_better: bool = True

    @property
    def unit(self) -> str:
        """What ``n`` counts: ``prompts``, ``pairs`` or ``COLUMN groups``."""
        return unit_name(self.cluster)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "cluster": list(self.cluster) if self.cluster else None,
            "unit": self.unit,
            "scale": self.scale,
            "column": self.column or SCALED_COLUMN,
            "higher_is_better": self.higher_is_better,
            "confidence": self.confidence,
            "alpha": self.alpha,
            "power": self.power,
            "p_adjustment": "holm (within each table)",
            "runs": [r.to_dict() for r in self.runs],
            "pairs": [p.to_dict() for p in self.pairs],
            "breakdowns": {
                col: [
                    {"value": g.value, "runs": [r.to_dict() for r in g.runs], "pairs": [p.to_dict() for p in g.pairs]}
                    for g in groups
                ]
                for col, groups in self.breakdowns.items()
            },
        }


def unit_name(cluster: Sequence[str] | None) -> str:
    if not cluster:
        return "pairs"
    return "prompts" if tuple(cluster) == ("prompt_id",) else f"{'/'.join(cluster)} groups"


def score_digits(scale: str, column: str | None) -> int:
    """Decimals worth showing for scores: 2 in the ×100 torchmetrics scale, 4 otherwise."""
    return 2 if scale == "torchmetrics" and column is None else 4


def format_p(p: float) -> str:
    """``<0.001``, ``0.012`` or ``-`` (NaN)."""
    if p is None or math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(p: float) -> str:
    text = format_p(p)
    return "p = n/a" if text == "-" else f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def sentence(a: str, b: str, test: PairedTest, p_adjusted: float, n_tests: int, *, digits: int = 4,
             unit: str = "pairs", pairs: int | None = None) -> str:
    """A plain-language verdict on *a* vs *b* (significance judged on *p_adjusted* against α)."""
    if test.n < 2:
        return f"{a} vs {b}: too few scored {unit} ({test.n}) to compare."
    conf = round(100 * test.confidence)
    diff = f"{test.mean_diff:+.{digits}f} [{conf}% CI {test.ci_low:+.{digits}f}, {test.ci_high:+.{digits}f}]"
    if n_tests > 1:
        p = f"{_p_text(test.p_value)}, {format_p(p_adjusted)} after Holm adjustment for {n_tests} comparisons"
    else:
        p = _p_text(test.p_value)
    p += f", n = {test.n} {unit}" + (f" from {pairs} image pairs" if pairs is not None and unit != "pairs" else "")
    if p_adjusted < test.alpha:
        direction = "higher" if test.mean_diff > 0 else "lower"
        return (f"{a} scores significantly {direction} than {b}: {a} − {b} = {diff} ({p}); "
                f"{a} wins on {test.win_rate:.0%} of {unit}, ties {test.tie_rate:.0%}.")
    if math.isinf(test.n_required):
        need = "the two runs score the same on average"
    elif test.n_required > test.n:
        need = f"about {test.n_required:,.0f} {unit} would be needed to resolve a difference this size"
    else:
        need = f"a difference this size is at the edge of what {test.n} {unit} can resolve"
    return (f"No significant difference between {a} and {b} at α = {test.alpha:g}: {a} − {b} = {diff} ({p}); "
            f"{need}.")


def run_stats(name: str, records: Sequence[Record], values: np.ndarray, *, confidence: float, seed: int) -> RunStats:
    """:class:`RunStats` of *records* whose scores are *values* (NaN = not scored)."""
    return RunStats(name=name, rows=len(records), errors=sum(has_error(r) for r in records),
                    **MeanCI.of(values, confidence=confidence, seed=seed))


def _label(row_a: Record, row_b: Record, columns: Sequence[str]) -> Any:
    """A pair's value in *columns*: A's row, else B's (None if both lack it)."""
    return record_key(row_a, columns) or record_key(row_b, columns)


@dataclass
class _Paired:
    """The matched scores of one run pair and each pair's cluster label."""

    a: str
    b: str
    sa: np.ndarray
    sb: np.ndarray
    clusters: list[Any] | None
    rows_a: list[Record]
    rows_b: list[Record]


def _cell(p: _Paired, sel: np.ndarray | None, kw: dict) -> tuple[int, int, int, PairedTest]:
    """(matched, unscored, pairs used, test) for the pairs of *p* selected by *sel* (all when None)."""
    sa, sb = (p.sa, p.sb) if sel is None else (p.sa[sel], p.sb[sel])
    matched = int(sa.size)
    scored = int(np.count_nonzero(~(np.isnan(sa) | np.isnan(sb))))
    if p.clusters is not None:
        labels = p.clusters if sel is None else [c for c, keep in zip(p.clusters, sel) if keep]
        sa, sb, _ = cluster_means(sa, sb, labels)
    return matched, matched - scored, scored, paired_test(sa, sb, **kw)


def compare_runs(
    runs: Mapping[str, Sequence[Record]],
    *,
    key: Sequence[str] = ("prompt_id",),
    cluster: Sequence[str] | str | None = AUTO,
    scale: str = "cosine",
    column: str | None = None,
    by: Sequence[str] | None = DEFAULT_BREAKDOWN,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    higher_is_better: bool = True,
) -> Comparison:
    """Compare two or more runs (``{name: records}``, in the order given) on rows matched by *key*.

    Scores are the ``cosine`` column in *scale*, or *column* as it is (see :func:`records.scores`).
    *cluster* names the columns whose pairs are averaged into one unit (``"auto"``: ``key[0]`` when the
    key has several columns; None: every pair is a unit). *by* lists breakdown columns; those without a
    value in any run are skipped. *higher_is_better* is the direction of *column*; the scale's direction
    (:func:`~clipgauge.scoring.scales.higher_is_better`, lower for ``angle``) is used when *column* is None.
    Raises :class:`UsageError` for fewer than two runs, a missing key or cluster
    column, or a key that does not identify rows.
    """
    names = list(runs)
    if len(names) < 2:
        raise UsageError("compare needs at least two results files")
    if column is None:
        higher_is_better = scale_higher_is_better(scale)
    key = tuple(key)
    if cluster == AUTO:
        cluster = key[:1] if len(key) > 1 else None
    cluster = tuple(cluster) if cluster else None
    for name in names:
        cols = {c for r in runs[name] for c in r}
        if missing := [k for k in key + (cluster or ()) if k not in cols]:
            columns = ", ".join(repr(m) for m in missing)
            raise UsageError(f"{name} has no column {columns} (a key or cluster column)",
                             cli=f"{name} has no column {columns} (see --key / --cluster)")
    values = {name: scores(runs[name], scale=scale, column=column) for name in names}
    kw = dict(confidence=confidence, alpha=alpha, power=power, n_resamples=n_resamples, seed=seed)
    digits = score_digits(scale, column)
    unit = unit_name(cluster)

    paired, unmatched = [], []
    for a, b in combinations(names, 2):
        m = match_runs(runs[a], runs[b], key, names=(a, b))
        clusters = None
        if cluster:
            clusters = [_label(ra, rb, cluster) or ("(pair)", i) for i, (ra, rb) in enumerate(zip(m.rows_a, m.rows_b))]
        paired.append(_Paired(a, b, values[a][m.index_a], values[b][m.index_b], clusters, m.rows_a, m.rows_b))
        unmatched.append(m.unmatched())
    pairs = _finish([(p.a, p.b, *_cell(p, None, kw)) for p in paired], digits, unit)
    for p, u in zip(pairs, unmatched):
        p.unmatched = u

    out = Comparison(key=key, cluster=cluster, scale=scale, column=column, confidence=confidence, alpha=alpha,
                     power=power, runs=[run_stats(n, runs[n], values[n], confidence=confidence, seed=seed)
                                        for n in names], pairs=pairs, higher_is_better=higher_is_better)
    present = {c for recs in runs.values() for r in recs for c, v in r.items() if key_value(v) is not None}
    for col in [c for c in (by or ()) if c in present and c not in key]:
        out.breakdowns[col] = _breakdown(col, runs, values, paired, kw, digits, unit)
    for p in out.pairs + [q for groups in out.breakdowns.values() for g in groups for q in g.pairs]:
        p.better = better_run(p, higher_is_better)
    if not higher_is_better:
        what = "on the angle scale" if column is None else "for this metric"
        for p in out.pairs:
            p.sentence += f" Lower is better {what}" + (f": {p.better} is better." if p.better else ".")
    return out


def better_run(pair: PairResult, higher_is_better: bool = True) -> str | None:
    """The run of *pair* whose mean is better in the score's direction (the lower one where lower is better);
    None when the mean difference is zero or undefined."""
    d = pair.test.mean_diff
    if d is None or math.isnan(d) or d == 0:
        return None
    return pair.a if (d > 0) == higher_is_better else pair.b


def _finish(cells: list[tuple[str, str, int, int, int, PairedTest]], digits: int, unit: str) -> list[PairResult]:
    adjusted = holm([c[-1].p_value for c in cells])
    n_tests = sum(not math.isnan(c[-1].p_value) for c in cells)
    out = []
    for (a, b, matched, unscored, used, test), p_adj in zip(cells, adjusted):
        out.append(PairResult(a=a, b=b, matched=matched, unscored=unscored, pairs=used, test=test, p_adjusted=p_adj,
                              significant=bool(p_adj < test.alpha),
                              sentence=sentence(a, b, test, p_adj, n_tests, digits=digits, unit=unit, pairs=used)))
    return out


def _breakdown(col: str, runs, values, paired: list[_Paired], kw: dict, digits: int, unit: str) -> list[Group]:
    labels = {name: [key_value(r.get(col)) for r in recs] for name, recs in runs.items()}
    pair_labels = [np.array([(_label(ra, rb, (col,)) or (None,))[0] for ra, rb in zip(p.rows_a, p.rows_b)],
                            dtype=object) for p in paired]
    group_values = sorted({v for lab in labels.values() for v in lab if v is not None})
    cells, groups = [], []
    for value in group_values:
        stats_ = []
        for name, recs in runs.items():
            mask = np.array([v == value for v in labels[name]], dtype=bool)
            stats_.append(run_stats(name, [r for r, keep in zip(recs, mask) if keep], values[name][mask],
                                    confidence=kw["confidence"], seed=kw["seed"]))
        groups.append(Group(column=col, value=value, runs=stats_, pairs=[]))
        for p, lab in zip(paired, pair_labels):
            cells.append((value, (p.a, p.b, *_cell(p, lab == value, kw))))
    finished = _finish([c for _, c in cells], digits, unit)
    by_value = {g.value: g for g in groups}
    for (value, _), pair in zip(cells, finished):
        by_value[value].pairs.append(pair)
    return groups

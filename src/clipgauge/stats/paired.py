"""Paired comparison of two runs scored on the same prompts.

Two runs (models, checkpoints, settings) are matched row by row on key columns (``prompt_id``, or
``prompt_id,seed`` when each prompt has several images) and compared through the per-pair differences
``d = score_A − score_B`` (in the scores' own units: cosine, or ×100 in the torchmetrics scale):

* **mean difference** with a 95% **paired bootstrap** CI (pairs are resampled, i.e. the differences;
  percentile method, 10,000 resamples, fixed seed — :func:`clipgauge.stats.summary.bootstrap_mean_ci`);
* a two-sided **sign-flip permutation test** of "no difference": under H0 each difference is as likely
  to be +d as −d, so the p-value is the share of random sign flips whose |Σ d| is at least the observed
  one — exact (all 2ⁿ flips) when 2ⁿ ≤ the resample count, otherwise Monte Carlo with a fixed seed and
  p = (1 + hits) / (1 + resamples), which is never 0;
* the **win rate**: shares of pairs where A scores higher, lower, or exactly the same (ties reported);
* the **number of pairs needed** to resolve a difference of the observed size with a two-sided test at
  level α and the given power (normal approximation for a paired design)::

      n = ((z_{1−α/2} + z_{power}) · σ_d / δ)²     (rounded up; α = 0.05, power = 0.8 by default)

  with δ the observed mean difference and σ_d the standard deviation of the differences (ddof=1).

Everything here is a pure function of arrays or records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..errors import UsageError
from .records import Record, record_key
from .summary import bootstrap_mean_ci

#: Default number of sign-flip permutations (and bootstrap resamples).
N_RESAMPLES = 10_000


def sign_flip_pvalue(differences: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, str]:
    """Two-sided sign-flip permutation p-value of H0 "the differences are symmetric around 0".

    Returns ``(p, method)``. Exact over all 2ⁿ sign patterns when 2ⁿ ≤ *n_resamples*; otherwise
    *n_resamples* random patterns (``numpy.random.default_rng(seed)``) and p = (1 + hits) / (1 + n_resamples).
    NaNs are ignored; p = 1 when every difference is 0; NaN for no differences.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    n = d.size
    if n == 0:
        return float("nan"), "none (no pairs)"
    observed = abs(d.sum())
    if observed == 0.0:
        return 1.0, "sign-flip permutation test (all differences zero)"
    # |Σ ±d| equal to the observed value up to float rounding counts as "at least as extreme"
    tol = 1e-9 * float(np.abs(d).sum())
    if n <= 30 and 2**n <= n_resamples:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        hits = int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
        return hits / 2**n, f"sign-flip permutation test, exact over all {2**n} sign patterns"
    # Σ s_i d_i with s_i = 2 b_i − 1 equals 2 (b · d) − Σ d: random bits b from random bytes, 8 per byte
    rng = np.random.default_rng(seed)
    total = float(d.sum())
    hits = 0
    chunk = max(1, min(n_resamples, 4_000_000 // n))
    done = 0
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        raw = rng.integers(0, 256, size=(m, (n + 7) // 8), dtype=np.uint8)
        bits = np.unpackbits(raw, axis=1, count=n).astype(np.float64)
        hits += int(np.count_nonzero(np.abs(2.0 * (bits @ d) - total) >= observed - tol))
        done += m
    return (1 + hits) / (1 + n_resamples), f"sign-flip permutation test, {n_resamples} random flips, seed {seed}"


def required_pairs(mean_diff: float, sd_diff: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Pairs needed to detect a true mean difference *mean_diff* with a two-sided level-*alpha* test.

    ``ceil(((z_{1−α/2} + z_{power}) · sd_diff / mean_diff)²)``, at least 2; ``inf`` when *mean_diff* is 0
    (or NaN), NaN when *sd_diff* is NaN. Both arguments are in the same units (e.g. cosine).
    """
    if math.isnan(mean_diff) or mean_diff == 0.0:
        return math.inf
    if math.isnan(sd_diff):
        return math.nan
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    return float(max(2, math.ceil((z * sd_diff / abs(mean_diff)) ** 2 - 1e-9)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given; NaNs stay NaN and are not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def cluster_means(
    a: np.ndarray, b: np.ndarray, labels: Sequence[object]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Average paired scores within clusters (e.g. the seeds of one prompt): ``(a_means, b_means, pairs)``.

    Pairs with a NaN on either side are left out first; clusters come in order of first appearance;
    *pairs* is the number of pairs that went into the means. Testing cluster means treats the cluster —
    not the image — as the independent unit, which is right when images of one prompt are correlated.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    index: dict[object, int] = {}
    codes = np.array([index.setdefault(lab, len(index)) for lab, keep in zip(labels, ok) if keep], dtype=np.int64)
    count = np.bincount(codes, minlength=len(index)).astype(np.float64)
    a_means = np.bincount(codes, weights=a[ok], minlength=len(index)) / np.maximum(count, 1)
    b_means = np.bincount(codes, weights=b[ok], minlength=len(index)) / np.maximum(count, 1)
    return a_means, b_means, int(ok.sum())


@dataclass
class PairedTest:
    """The comparison of runs A and B over *n* matched, scored pairs. Differences are A − B, in score units."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float
    p_method: str
    wins: int
    losses: int
    ties: int
    n_required: float
    confidence: float = 0.95
    alpha: float = 0.05
    power: float = 0.8

    @property
    def win_rate(self) -> float:
        """Share of pairs where A scores strictly higher than B, in [0, 1]."""
        return self.wins / self.n if self.n else math.nan

    @property
    def loss_rate(self) -> float:
        return self.losses / self.n if self.n else math.nan

    @property
    def tie_rate(self) -> float:
        return self.ties / self.n if self.n else math.nan

    def significant(self, p_value: float | None = None) -> bool:
        """Whether *p_value* (default: the test's own p) is below α."""
        p = self.p_value if p_value is None else p_value
        return bool(p < self.alpha)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(win_rate=self.win_rate, loss_rate=self.loss_rate, tie_rate=self.tie_rate)
        return d


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedTest:
    """Compare paired scores *a* and *b* (same length; pairs with a NaN on either side are left out)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise UsageError(f"paired scores need equal lengths, got {a.shape} and {b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    d = a - b
    n = int(d.size)
    nan = float("nan")
    low, high, ci_method = bootstrap_mean_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    p, p_method = sign_flip_pvalue(d, n_resamples=n_resamples, seed=seed)
    mean_diff = float(d.mean()) if n else nan
    sd = float(d.std(ddof=1)) if n > 1 else nan
    return PairedTest(
        n=n,
        mean_a=float(a.mean()) if n else nan,
        mean_b=float(b.mean()) if n else nan,
        mean_diff=mean_diff,
        sd_diff=sd,
        ci_low=low,
        ci_high=high,
        ci_method=ci_method,
        p_value=p,
        p_method=p_method,
        wins=int(np.count_nonzero(d > 0)),
        losses=int(np.count_nonzero(d < 0)),
        ties=int(np.count_nonzero(d == 0)),
        n_required=required_pairs(mean_diff, sd, alpha=alpha, power=power) if n > 1 else nan,
        confidence=confidence,
        alpha=alpha,
        power=power,
    )


@dataclass
class MatchedRuns:
    """Rows of runs A and B paired on *key* columns. Keys are tuples of text (see ``records.key_value``)."""

    key: tuple[str, ...]
    keys: list[tuple[str, ...]] = field(default_factory=list)
    index_a: list[int] = field(default_factory=list)  # row positions in A of the matched pairs
    index_b: list[int] = field(default_factory=list)
    rows_a: list[Record] = field(default_factory=list)
    rows_b: list[Record] = field(default_factory=list)
    only_a: list[tuple[str, ...]] = field(default_factory=list)
    only_b: list[tuple[str, ...]] = field(default_factory=list)
    no_key_a: int = 0
    no_key_b: int = 0

    @property
    def n_matched(self) -> int:
        return len(self.keys)

    def unmatched(self) -> dict[str, Any]:
        """Counts and (up to 20) examples of the rows that found no partner."""
        return {
            "only_a": len(self.only_a),
            "only_b": len(self.only_b),
            "no_key_a": self.no_key_a,
            "no_key_b": self.no_key_b,
            "examples_only_a": [list(k) for k in self.only_a[:20]],
            "examples_only_b": [list(k) for k in self.only_b[:20]],
        }


def _index(records: Sequence[Record], key: tuple[str, ...], name: str) -> tuple[dict[tuple[str, ...], int], int]:
    index: dict[tuple[str, ...], int] = {}
    counts: Counter[tuple[str, ...]] = Counter()
    missing = 0
    for i, r in enumerate(records):
        k = record_key(r, key)
        if k is None:
            missing += 1
            continue
        counts[k] += 1
        index.setdefault(k, i)
    dup = [(k, c) for k, c in counts.items() if c > 1]
    if dup:
        k, c = dup[0]
        message = (f"{name}: the key ({','.join(key)}) does not identify rows: {'/'.join(k)} occurs {c} times "
                   f"({len(dup)} keys repeat); add the column that tells them apart")
        example = f"{','.join(key)},seed"
        raise UsageError(f"{message} to the key, e.g. {example}", cli=f"{message}, e.g. --key {example}")
    return index, missing


def match_runs(
    a: Sequence[Record], b: Sequence[Record], key: Sequence[str], *, names: tuple[str, str] = ("A", "B")
) -> MatchedRuns:
    """Pair the rows of *a* and *b* that have the same values in the *key* columns.

    Pairs come in A's row order. Rows whose key exists in only one run, and rows lacking a key value,
    are counted (never silently dropped). A key that occurs twice within a run raises :class:`UsageError`.
    """
    key = tuple(key)
    index_a, missing_a = _index(a, key, names[0])
    index_b, missing_b = _index(b, key, names[1])
    out = MatchedRuns(key=key, no_key_a=missing_a, no_key_b=missing_b)
    for k, i in index_a.items():
        if k in index_b:
            out.keys.append(k)
            out.index_a.append(i)
            out.index_b.append(index_b[k])
            out.rows_a.append(a[i])
            out.rows_b.append(b[index_b[k]])
        else:
            out.only_a.append(k)
    out.only_b = [k for k in index_b if k not in index_a]
    return out

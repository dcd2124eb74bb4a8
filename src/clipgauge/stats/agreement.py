"""How far a metric agrees with people: rank correlations and pairwise accuracy, with bootstrap CIs.

* Kendall's τ-b and τ-c are ``scipy.stats.kendalltau(metric, human, variant=...)``, exactly what the CLIPScore
  paper's code (``flickr8k_example/compute_metrics.py``) calls: τ-c for Flickr8K-Expert, τ-b for Flickr8K-CF.
  Every rating is its own row (an Expert caption with three ratings is three rows), as there.
* Spearman's ρ is ``scipy.stats.spearmanr`` (average ranks for ties).
* Both come from :mod:`clipgauge.stats.correlation`, shared with ``clipgauge backbones`` and the run summary.
* Pairwise accuracy follows Pick-a-Pic's ``eval_preference_predictor.py``: the metric predicts the image with the
  higher score, or a tie when ``|s0 − s1| <= tie_threshold`` (default 0: only equal scores); a pair scores 1 when
  prediction and human label agree (tie = tie included), 0.5 when exactly one of them is a tie, else 0; the
  accuracy is the mean over pairs, in [0, 1].

All correlations are in [-1, 1] (the papers print them ×100). CIs are percentile bootstrap intervals over
resampled units (rows for correlations, pairs for accuracy), seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .correlation import kendall_tau, spearman_rho

#: bootstrap resamples of every CI
N_RESAMPLES = 1000


def pair_credit(score_0: np.ndarray, score_1: np.ndarray, human_0: np.ndarray,
                tie_threshold: float = 0.0) -> np.ndarray:
    """Credit of every pair under Pick-a-Pic's convention: 1, 0.5 or 0 (see the module docstring).

    *human_0* is the human's share for image 0: 1 (image 0 preferred), 0 (image 1), 0.5 (tie).
    """
    s0, s1, h = (np.asarray(x, dtype=np.float64) for x in (score_0, score_1, human_0))
    pred = np.where(np.abs(s0 - s1) <= tie_threshold, 0.5, np.where(s0 > s1, 1.0, 0.0))
    label = np.where(h == 0.5, 0.5, np.where(h > 0.5, 1.0, 0.0))
    return np.where(pred == label, 1.0, np.where((pred == 0.5) | (label == 0.5), 0.5, 0.0))


def pairwise_accuracy(score_0: np.ndarray, score_1: np.ndarray, human_0: np.ndarray,
                      tie_threshold: float = 0.0) -> float:
    """Share of pairs where the metric prefers the image people preferred, in [0, 1] (ties: half credit)."""
    credit = pair_credit(score_0, score_1, human_0, tie_threshold)
    return float(credit.mean()) if credit.size else float("nan")


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, confidence: float = 0.95,
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[float | None]:
    """Percentile bootstrap CI ``[low, high]`` of ``statistic(indices)`` over *n* units resampled with replacement
    (resamples where the statistic is undefined are skipped; ``[None, None]`` when none is defined)."""
    if n < 2:
        return [None, None]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_resamples)], dtype=np.float64)
    values = values[~np.isnan(values)]
    if not values.size:
        return [None, None]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return [float(low), float(high)]


def agreement(metric: np.ndarray | None = None, human: np.ndarray | None = None, *,
              pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, tie_threshold: float = 0.0,
              confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The agreement document of ``clipgauge validate --json``.

    Give per-row *metric* and *human* scores (rated captions or images), or *pairs* ``(score_0, score_1,
    human_0)`` (pairwise preferences). Rows or pairs with a missing value (NaN) are left out and counted
    (``left_out``). With pairs, the correlations are over the per-pair differences ``score_0 − score_1`` against
    the human's share ``human_0`` (τ over signed preferences); with rows, ``pairwise_accuracy`` is None.
    Keys: ``n``, ``kendall_tau_b``, ``kendall_tau_c``, ``spearman``, ``pairwise_accuracy``, each with ``_ci``.
    """
    if pairs is not None:
        s0, s1, h = (np.asarray(x, dtype=np.float64) for x in pairs)
        keep = ~(np.isnan(s0) | np.isnan(s1) | np.isnan(h))
        s0, s1, h = s0[keep], s1[keep], h[keep]
        x, y = s0 - s1, h
    else:
        x, y = np.asarray(metric, dtype=np.float64), np.asarray(human, dtype=np.float64)
        keep = ~(np.isnan(x) | np.isnan(y))
        x, y = x[keep], y[keep]
    n = int(x.size)

    def ci(fn: Callable[[np.ndarray], float], offset: int) -> list[float | None]:
        return bootstrap_ci(fn, n, confidence=confidence, n_resamples=n_resamples, seed=seed + offset)

    doc: dict[str, Any] = {"n": n, "left_out": int((~keep).sum())}
    stats: dict[str, Callable[[np.ndarray], float]] = {
        "kendall_tau_b": lambda i: kendall_tau(x[i], y[i], "b"),
        "kendall_tau_c": lambda i: kendall_tau(x[i], y[i], "c"),
        "spearman": lambda i: spearman_rho(x[i], y[i]),
    }
    if pairs is not None:
        stats["pairwise_accuracy"] = lambda i: pairwise_accuracy(s0[i], s1[i], h[i], tie_threshold)
    everything = np.arange(n)
    for offset, (name, fn) in enumerate(stats.items()):
        doc[name] = fn(everything) if n else float("nan")
        doc[f"{name}_ci"] = ci(fn, offset)
    if pairs is None:
        doc["pairwise_accuracy"], doc["pairwise_accuracy_ci"] = None, None
    else:
        doc["ties"] = int((h == 0.5).sum())
        doc["tie_threshold"] = tie_threshold
    doc.update(confidence=confidence, n_resamples=n_resamples, seed=seed)
    return doc

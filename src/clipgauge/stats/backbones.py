"""How far CLIP backbones agree on the same rows: the statistics of ``clipgauge backbones`` (pure numpy/scipy).

* **Row agreement**: per pair of backbones, Spearman's ρ (``scipy.stats.spearmanr``) and Kendall's τ-b
  (``scipy.stats.kendalltau``) of their per-row cosines, over the rows both scored; in [-1, 1].
* **System agreement** (with a column naming the generator or run): each backbone's mean cosine per system,
  Kendall's τ-b between the system rankings of every two backbones, and the share of system pairs (A, B) whose
  difference of means has the same sign under every backbone (``sign_agreement``, in [0, 1]).
* **Disagreement**: each row's rank percentile under each backbone (average rank / n, in (0, 1]); the rows with
  the largest spread (max − min percentile) are where the backbones disagree most.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from .correlation import kendall_tau, spearman_rho


def row_correlations(scores: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Spearman ρ and Kendall τ-b of every two backbones' per-row scores (NaN = not scored: left out)."""
    out = []
    for a, b in combinations(scores, 2):
        x, y = scores[a], scores[b]
        both = ~np.isnan(x) & ~np.isnan(y)
        n = int(both.sum())
        out.append({"a": a, "b": b, "n": n, "spearman": spearman_rho(x[both], y[both]),
                    "kendall_tau_b": kendall_tau(x[both], y[both], "b")})
    return out


def system_agreement(scores: dict[str, np.ndarray], systems: list[Any]) -> dict[str, Any]:
    """Mean score per system and backbone, Kendall τ-b between backbones' system rankings, and the share of
    system pairs whose sign of difference every backbone agrees on. Rows without a system are left out."""
    labels = np.array(["" if s is None else str(s) for s in systems], dtype=object)
    names = sorted({s for s in labels if s != ""})
    means: dict[str, dict[str, float]] = {}
    for backbone, x in scores.items():
        means[backbone] = {}
        for s in names:
            v = x[(labels == s) & ~np.isnan(x)]
            means[backbone][s] = float(v.mean()) if v.size else float("nan")
    taus = []
    for a, b in combinations(scores, 2):
        x = np.array([means[a][s] for s in names])
        y = np.array([means[b][s] for s in names])
        ok = ~np.isnan(x) & ~np.isnan(y)
        tau = kendall_tau(x[ok], y[ok], "b")
        taus.append({"a": a, "b": b, "systems": int(ok.sum()), "kendall_tau_b": tau})
    agree = total = 0
    for s, t in combinations(names, 2):
        signs = {np.sign(means[bb][s] - means[bb][t]) for bb in scores}
        if any(np.isnan(v) for v in signs):
            continue
        total += 1
        agree += len(signs) == 1
    return {"systems": names, "means": means, "ranking_tau": taus, "system_pairs": total,
            "sign_agreement": agree / total if total else None}


def rank_percentiles(x: np.ndarray) -> np.ndarray:
    """Average rank / n of every value (ties share their average rank), in (0, 1]; NaN stays NaN."""
    from scipy.stats import rankdata

    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ok.any():
        out[ok] = rankdata(x[ok]) / ok.sum()
    return out


def disagreements(scores: dict[str, np.ndarray], top: int = 20) -> list[dict[str, Any]]:
    """The *top* rows with the largest spread of rank percentiles across backbones (rows every backbone
    scored), largest first: ``{"index", "spread", "percentiles": {backbone: p}}``."""
    pct = {b: rank_percentiles(x) for b, x in scores.items()}
    stack = np.vstack(list(pct.values()))
    ok = ~np.isnan(stack).any(axis=0)
    filled = np.where(ok, stack, 0.0)
    spread = np.where(ok, filled.max(axis=0) - filled.min(axis=0), -1.0)
    order = [int(i) for i in np.argsort(-spread, kind="stable") if ok[i]][:top]
    return [{"index": i, "spread": float(spread[i]), "percentiles": {b: float(p[i]) for b, p in pct.items()}}
            for i in order]

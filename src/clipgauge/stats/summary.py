"""Summaries of per-row scores with a bootstrap confidence interval of the mean."""

from __future__ import annotations

import numpy as np

#: Above this many values the bootstrap is replaced by the normal approximation (identical to many
#: digits at that size, and thousands of times cheaper); the method used is always reported.
BOOTSTRAP_MAX_N = 100_000


def bootstrap_mean_ci(
    values: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, str]:
    """Confidence interval of the mean of *values*: ``(low, high, method)`` in the values' units.

    Percentile bootstrap (resampling with replacement, fixed *seed* so the interval is reproducible)
    up to :data:`BOOTSTRAP_MAX_N` values, normal approximation above. NaN for fewer than 2 values.
    Plain numpy: scoring a manifest should not pay for importing scipy.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan"), float("nan"), "none (fewer than 2 values)"
    if np.all(x == x[0]):
        return float(x[0]), float(x[0]), "constant"
    alpha = (1.0 - confidence) / 2.0
    if x.size > BOOTSTRAP_MAX_N:
        from statistics import NormalDist

        half = NormalDist().inv_cdf(1.0 - alpha) * x.std(ddof=1) / np.sqrt(x.size)
        return float(x.mean() - half), float(x.mean() + half), "normal approximation"
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 4_000_000 // x.size)
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high), f"percentile bootstrap, {n_resamples} resamples, seed {seed}"


def describe(values: np.ndarray, *, confidence: float = 0.95, seed: int = 0) -> dict[str, float | int | str]:
    """n, mean, std (ddof=1), min, max, median and the CI of the mean of the non-NaN *values*."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "median": nan,
                "ci_low": nan, "ci_high": nan, "ci_method": "none (no values)"}
    low, high, method = bootstrap_mean_ci(x, confidence=confidence, seed=seed)
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
        "min": float(x.min()),
        "max": float(x.max()),
        "median": float(np.median(x)),
        "ci_low": low,
        "ci_high": high,
        "ci_method": method,
    }


def summarize_scores(
    cosine: np.ndarray, truncated: np.ndarray, errors: list[str | None], *, confidence: float = 0.95
) -> dict:
    """The run summary: counts plus :func:`describe` of the scores in every scale.

    In the ``torchmetrics`` scale the mean (and its CI) is reported as torchmetrics does,
    ``max(100 × mean cosine, 0)``; the other statistics are of the per-row ×100 values.
    """
    from ..scoring.scales import SCALES, to_scale

    cos = np.asarray(cosine, dtype=np.float64)
    trunc = np.asarray(truncated, dtype=bool)
    n_err = sum(e is not None for e in errors)
    out: dict = {
        "rows": int(cos.size),
        "scored": int(np.sum(~np.isnan(cos))),
        "errors": int(n_err),
        "truncated": int(trunc.sum()),
        "confidence": confidence,
        "scales": {},
    }
    for scale in SCALES:
        d = describe(to_scale(cos, scale), confidence=confidence)
        if scale == "torchmetrics" and d["n"]:
            for key in ("mean", "ci_low", "ci_high"):
                d[key] = max(float(d[key]), 0.0)
        out["scales"][scale] = d
    return out

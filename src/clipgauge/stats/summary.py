"""Summaries of per-row scores with a bootstrap confidence interval of the mean."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

#: Above this many values the bootstrap is replaced by the normal approximation; the method used is always
#: reported. At 20,000 values the two intervals' ends differ by under 1 % of the interval's width, which is
#: the bootstrap's own Monte Carlo spread across seeds (0.5-0.9 %; normal, gamma and exponential scores), and
#: the bootstrap of three score columns costs about 2 s there, against microseconds for the approximation.
BOOTSTRAP_MAX_N = 20_000


def bootstrap_mean_ci(
    values: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, str]:
    """Confidence interval of the mean of *values*: ``(low, high, method)`` in the values' units.

    Percentile bootstrap (resampling with replacement, fixed *seed* so the interval is reproducible)
    up to :data:`BOOTSTRAP_MAX_N` values, normal approximation above. NaN for fewer than 2 values.
    Plain numpy: scoring a manifest should not pay for importing scipy.
    """
    return bootstrap_mean_cis([values], confidence=confidence, n_resamples=n_resamples, seed=seed)[0]


def bootstrap_mean_cis(
    columns: list[np.ndarray], *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> list[tuple[float, float, str]]:
    """:func:`bootstrap_mean_ci` of each column, each equal to its own call, with the resamples drawn once for
    the columns whose non-NaN values have the same count (they draw the same indices from the same *seed*).

    A run's summary gives each score in three scales; drawing the 10,000 × n indices once instead of three
    times halves the summary's time.
    """
    xs = [np.asarray(v, dtype=np.float64) for v in columns]
    xs = [x[~np.isnan(x)] for x in xs]
    out: list[tuple[float, float, str] | None] = [None] * len(xs)
    alpha = (1.0 - confidence) / 2.0
    todo: dict[int, list[int]] = {}  # size -> columns that need resampling
    for k, x in enumerate(xs):
        if x.size < 2:
            out[k] = (float("nan"), float("nan"), "none (fewer than 2 values)")
        elif np.all(x == x[0]):
            out[k] = (float(x[0]), float(x[0]), "constant")
        elif x.size > BOOTSTRAP_MAX_N:
            from statistics import NormalDist

            half = NormalDist().inv_cdf(1.0 - alpha) * x.std(ddof=1) / np.sqrt(x.size)
            out[k] = (float(x.mean() - half), float(x.mean() + half), "normal approximation")
        else:
            todo.setdefault(x.size, []).append(k)
    method = f"percentile bootstrap, {n_resamples} resamples, seed {seed}"
    for size, ks in todo.items():
        rng = np.random.default_rng(seed)
        means = np.empty((len(ks), n_resamples))
        step = max(1, 4_000_000 // size)
        for start in range(0, n_resamples, step):
            stop = min(n_resamples, start + step)
            index = rng.integers(0, size, size=(stop - start, size))
            for j, k in enumerate(ks):
                means[j, start:stop] = xs[k][index].mean(axis=1)
        for j, k in enumerate(ks):
            low, high = np.quantile(means[j], [alpha, 1.0 - alpha])
            out[k] = (float(low), float(high), method)
    return out  # type: ignore[return-value]


def describe(values: np.ndarray, *, confidence: float = 0.95, seed: int = 0,
             ci: tuple[float, float, str] | None = None) -> dict[str, float | int | str]:
    """n, mean, std (ddof=1), min, max, median and the CI of the mean of the non-NaN *values* (*ci*: that
    interval when already computed by :func:`bootstrap_mean_cis`)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "median": nan,
                "ci_low": nan, "ci_high": nan, "ci_method": "none (no values)"}
    low, high, method = ci or bootstrap_mean_ci(x, confidence=confidence, seed=seed)
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


@dataclass
class MeanCI:
    """A mean with its CI, in the values' units: ``n`` values (or units), ``mean``, ``std`` (ddof=1), the CI
    ``[ci_low, ci_high]`` of the mean and ``ci_method``, as :func:`describe` gives them (NaN for no values).

    A subclass adds what the mean is of (a run, a value of a swept setting); :meth:`to_dict` lists its fields
    first.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    ci_method: str

    @staticmethod
    def of(values: np.ndarray, *, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
        """The :class:`MeanCI` fields of the non-NaN *values*, as keyword arguments of a subclass."""
        d = describe(values, confidence=confidence, seed=seed)
        return {"n": int(d["n"]), "mean": float(d["mean"]), "std": float(d["std"]), "ci_low": float(d["ci_low"]),
                "ci_high": float(d["ci_high"]), "ci_method": str(d["ci_method"])}

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict: the subclass's own fields, then ``n``, ``mean``, ``std``, ``ci_low``,
        ``ci_high``, ``ci_method``."""
        d = asdict(self)
        mean = [f.name for f in fields(MeanCI)]
        return {**{k: v for k, v in d.items() if k not in mean}, **{k: d[k] for k in mean}}


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
    columns = [to_scale(cos, scale) for scale in SCALES]
    cis = bootstrap_mean_cis(columns, confidence=confidence)
    for scale, values, ci in zip(SCALES, columns, cis):
        d = describe(values, confidence=confidence, ci=ci)
        if scale == "torchmetrics" and d["n"]:
            for key in ("mean", "ci_low", "ci_high"):
                d[key] = max(float(d[key]), 0.0)
        out["scales"][scale] = d
    return out

"""Seeded percentile bootstrap confidence intervals for set-level statistics (CMMD, FD, KID, Vendi).

Scheme (documented, and pinned by the tests):

1. If ``max_rows`` is set, each set with more rows is subsampled ONCE, without replacement, to
   ``max_rows`` rows (``rng.choice(len, max_rows, replace=False)``, then sorted), x first, then y.
   Use it for quadratic statistics such as CMMD at 50,000 rows; the interval then describes the
   statistic at ``max_rows`` rows, not at the full size.
2. For each of ``resamples`` rounds, rows of x are drawn with replacement
   (``rng.integers(0, m, m)``) and, when y is resampled, then rows of y (``rng.integers(0, n, n)``),
   independently of each other.
3. The interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
   statistics (``np.quantile``, linear interpolation).

``rng = np.random.default_rng(seed)`` drives all of it, so the same inputs and seed give the
same interval, whatever the global numpy or torch random state.

Units: those of ``statistic``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["DEFAULT_RESAMPLES", "bootstrap_ci", "bootstrap_distribution"]

#: Default number of bootstrap resamples: enough for a stable 95% percentile interval of a
#: smooth statistic, and cheap next to computing the embeddings.
DEFAULT_RESAMPLES = 200


def _rows(a: Any) -> int:
    shape = getattr(a, "shape", None)
    if shape is None or len(shape) < 1:
        raise ValueError("bootstrap inputs must be arrays with rows (shape (rows, ...))")
    if shape[0] < 1:
        raise ValueError("bootstrap inputs must have at least one row")
    return int(shape[0])


def _take(a: Any, idx: np.ndarray) -> Any:
    if hasattr(a, "detach"):  # torch tensor: index with a tensor on its device
        import torch

        return a[torch.as_tensor(idx, device=a.device)]
    return a[idx]


def subsample_rows(a: Any, max_rows: int | None, rng: np.random.Generator) -> Any:
    n = _rows(a)
    if max_rows is None or n <= max_rows:
        return a
    return _take(a, np.sort(rng.choice(n, size=max_rows, replace=False)))


def bootstrap_distribution(
    statistic: Callable[..., float],
    x: Any,
    y: Any = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    max_rows: int | None = None,
    resample_y: bool = True,
) -> np.ndarray:
    """The ``resamples`` bootstrap values of ``statistic(x*)`` or ``statistic(x*, y*)`` (float64).

    ``resample_y=False`` keeps ``y`` fixed (only x is resampled; see :func:`bootstrap_ci`).
    See the module docstring for the exact scheme.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    rng = np.random.default_rng(seed)
    x = subsample_rows(x, max_rows, rng)
    if y is not None and resample_y:
        y = subsample_rows(y, max_rows, rng)
    m = _rows(x)
    n = _rows(y) if y is not None and resample_y else 0
    out = np.empty(resamples, dtype=np.float64)
    for r in range(resamples):
        xs = _take(x, rng.integers(0, m, m))
        if y is None:
            out[r] = float(statistic(xs))
            continue
        ys = _take(y, rng.integers(0, n, n)) if resample_y else y
        out[r] = float(statistic(xs, ys))
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not np.all(np.isfinite(values)):
        raise ValueError("the statistic returned a non-finite value on a bootstrap resample")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    statistic: Callable[..., float],
    x: Any,
    y: Any = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    max_rows: int | None = None,
    resample_y: bool = True,
    estimate: float | None = None,
    floor: float | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic(x)`` or ``statistic(x, y)``.

    Args:
        statistic: ``f(x)`` or ``f(x, y)`` returning a float (e.g. :func:`.mmd.cmmd`).
        x: ``(m, ...)`` rows (numpy array or torch tensor).
        y: Optional second set ``(n, ...)``; resampled independently of x.
        resamples: Bootstrap rounds (default 200).
        level: Coverage, in (0, 1) (default 0.95).
        seed: Seed of ``np.random.default_rng``; same seed, same interval.
        max_rows: If set, each set is first subsampled once (seeded, without replacement) to at
            most this many rows; the interval is then that of the statistic at that size.
        resample_y: False keeps ``y`` fixed: for a reference known only through summary statistics
            (e.g. a precomputed mean and covariance), passed unchanged to every call and never
            subsampled; the interval then reflects the sampling variability of ``x`` alone.
        estimate: If set, the interval is moved so that the resamples' mean lands on it (a resample
            repeats rows, which biases MMD, FD and KID upwards).
        floor: If set, both ends are raised to at least this value (a statistic that is >= floor).

    Returns:
        ``(low, high)`` in the statistic's units, ``low <= high``.
    """
    _check_level(level)
    values = bootstrap_distribution(statistic, x, y, resamples=resamples, seed=seed, max_rows=max_rows,
                                    resample_y=resample_y)
    lo, hi = _interval(values, level)
    if estimate is not None:
        shift = float(np.mean(values)) - float(estimate)
        lo, hi = lo - shift, hi - shift
    if floor is not None:
        lo, hi = max(lo, floor), max(hi, floor)
    return lo, hi

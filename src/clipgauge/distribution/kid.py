"""KID (kernel inception distance) on CLIP features, as torchmetrics' ``KernelInceptionDistance``.

Reference: ``torchmetrics/image/kid.py`` (torchmetrics 1.9.0): ``poly_kernel``, ``poly_mmd``,
``maximum_mean_discrepancy`` and ``KernelInceptionDistance.compute``:

* kernel ``k(a, b) = (gamma a.b + coef0) ** degree`` with ``gamma = 1 / D`` when ``None``;
* per subset, the unbiased squared MMD
  ``sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
  - 2 sum_ij k(x_i, y_j) / m^2`` with ``m = subset_size``;
* subsets: for each of ``subsets`` rounds, ``torch.randperm(len(x))[:subset_size]`` of the first
  set, then ``torch.randperm(len(y))[:subset_size]`` of the second (in that order);
* result: the mean over subsets and ``std(unbiased=False)`` over subsets (torchmetrics 1.9.0
  uses the population standard deviation, ddof=0, in ``compute``).

Here the randperms come from a ``torch.Generator`` seeded with ``seed`` (torchmetrics uses the
global generator; after ``torch.manual_seed(seed)`` the subsets are identical). The kernel
arithmetic is float64. Units: squared MMD in (feature units)^(2 * degree); the mean can be
slightly negative for sets from the same distribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["kid", "kid_from_subsets", "kid_subsets", "poly_mmd"]


def _as_f64(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    out = np.asarray(a, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (rows, dim), got shape {out.shape}")
    return out


def poly_mmd(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased squared MMD with a polynomial kernel between two equal-sized sets (one KID subset).

    ``x`` and ``y`` are ``(m, D)`` arrays with ``m >= 2``; float64 arithmetic.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = x.shape[0]
    if y.shape[0] != m:
        raise ValueError(f"KID subsets must have equal sizes, got {m} and {y.shape[0]}")
    if m < 2:
        raise ValueError(f"KID subsets need at least 2 rows, got {m}")
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    kt_xx = k_xx.sum() - np.trace(k_xx)
    kt_yy = k_yy.sum() - np.trace(k_yy)
    return float((kt_xx + kt_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m**2))


def kid_subsets(
    n_x: int, n_y: int, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The row indices KID uses: ``subsets`` pairs ``(idx_x, idx_y)`` of ``subset_size`` rows each.

    Drawn as torchmetrics draws them: per round ``randperm(n_x)[:subset_size]`` then
    ``randperm(n_y)[:subset_size]``, from a CPU ``torch.Generator`` seeded with ``seed``.

    Raises:
        ValueError: ``subset_size`` exceeds ``n_x`` or ``n_y`` (as torchmetrics), or is < 2.
    """
    import torch

    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    if n_x < subset_size or n_y < subset_size:
        raise ValueError(f"KID subset_size={subset_size} exceeds the rows available (x: {n_x}, y: {n_y})")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    out = []
    for _ in range(subsets):
        ix = torch.randperm(n_x, generator=gen)[:subset_size].numpy()
        iy = torch.randperm(n_y, generator=gen)[:subset_size].numpy()
        out.append((ix, iy))
    return out


def kid_from_subsets(
    x: Any,
    y: Any,
    index_pairs: Iterable[tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray]],
    *,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> tuple[float, float]:
    """KID mean and std over explicit subsets ``[(idx_x, idx_y), ...]`` of rows of ``x`` and ``y``.

    Each pair must select the same number of rows (at least 2). ``gamma=None`` means ``1 / D``.

    Returns:
        ``(mean, std)`` over subsets; std is the population standard deviation (ddof=0), as
        torchmetrics 1.9.0 returns it.
    """
    xa = _as_f64(x, "x")
    ya = _as_f64(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {xa.shape[1]} and {ya.shape[1]}")
    scores = np.array(
        [poly_mmd(xa[np.asarray(ix)], ya[np.asarray(iy)], degree, gamma, coef0) for ix, iy in index_pairs],
        dtype=np.float64,
    )
    if scores.size == 0:
        raise ValueError("no KID subsets given")
    return float(scores.mean()), float(scores.std(ddof=0))


def kid(
    x: Any,
    y: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between feature sets ``x`` (torchmetrics' "real") and ``y`` ("fake"): ``(mean, std)``.

    Args:
        x: ``(n_x, D)`` features (numpy array or torch tensor, any float dtype).
        y: ``(n_y, D)`` features.
        subsets: Number of random subsets (default 100, as torchmetrics).
        subset_size: Rows per subset (default 1000, as torchmetrics); must not exceed ``n_x`` or ``n_y``.
        degree, gamma, coef0: Polynomial kernel ``(gamma a.b + coef0) ** degree``; ``gamma=None``
            means ``1 / D``. Defaults 3, None, 1.0 (torchmetrics').
        seed: Seeds the subset sampling (see :func:`kid_subsets`): the same seed gives the same
            subsets and so the same result; torchmetrics after ``torch.manual_seed(seed)`` draws
            the same subsets.

    Returns:
        ``(mean, std)`` of the per-subset unbiased squared MMD; std with ddof=0 (torchmetrics 1.9.0).

    Raises:
        ValueError: ``subset_size`` larger than either set (torchmetrics refuses this too).
    """
    xa = _as_f64(x, "x")
    ya = _as_f64(y, "y")
    pairs = kid_subsets(xa.shape[0], ya.shape[0], subsets=subsets, subset_size=subset_size, seed=seed)
    return kid_from_subsets(xa, ya, pairs, degree=degree, gamma=gamma, coef0=coef0)

"""Fréchet distance (FD) between Gaussian fits of CLIP features, exactly as clean-fid computes it.

Reference: ``cleanfid/fid.py`` (GaParmar/clean-fid), ``frechet_distance`` and ``fid_from_feats``:
mean and ``np.cov(feats, rowvar=False)`` (sample covariance, ddof=1) per set, then
``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))``, with clean-fid's handling of a
singular product (retry with ``eps`` added to both diagonals) and of a complex square root
(real part kept when the diagonal's imaginary part is within ``atol=1e-3``, else an error).

:class:`Moments` accumulates the mean and covariance in one streaming pass over chunks, merging
per-chunk means and centred scatter matrices with Chan et al.'s pairwise formula (numerically
stable; equal to ``np.cov`` of all rows to ~1e-12 relative).

Units: FD is in squared feature units (for unit-norm CLIP embeddings, typically well below 1 per
dimension's variance sum; it is >= 0 up to the square root's rounding).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg

__all__ = ["Moments", "frechet_distance", "frechet_distance_moments"]


class Moments:
    """Streaming mean and sample covariance of row vectors (float64).

    ``update`` takes chunks of shape ``(rows, D)`` in any float dtype (numpy, or anything
    ``np.asarray`` accepts); chunks may have any number of rows, including 1. After all chunks,
    ``mean`` equals ``np.mean(all_rows, axis=0)`` and ``cov`` equals
    ``np.cov(all_rows, rowvar=False)`` (ddof=1) up to rounding.
    """

    def __init__(self, dim: int | None = None) -> None:
        self._n = 0
        self._dim = dim
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None  # sum of (x - mean)(x - mean)^T

    @classmethod
    def of(cls, x: Any) -> Moments:
        """Moments of one array of rows."""
        out = cls()
        out.update(x)
        return out

    @property
    def n(self) -> int:
        """Number of rows seen."""
        return self._n

    @property
    def dim(self) -> int | None:
        """Feature dimension D (None before the first chunk)."""
        return self._dim

    @property
    def mean(self) -> np.ndarray:
        """Mean, shape ``(D,)``, float64."""
        if self._mean is None:
            raise ValueError("Moments has no rows yet")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Sample covariance (ddof=1, as ``np.cov(rowvar=False)``), shape ``(D, D)``, float64."""
        if self._scatter is None or self._n < 2:
            raise ValueError(f"the covariance needs at least 2 rows, got {self._n}")
        return self._scatter / (self._n - 1)

    def _combine(self, n_b: int, mean_b: np.ndarray, scatter_b: np.ndarray) -> None:
        if self._mean is None or self._scatter is None:
            self._n, self._mean, self._scatter = n_b, mean_b, scatter_b
            return
        n_a = self._n
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._scatter = self._scatter + scatter_b
        self._scatter += np.outer(delta, delta) * (n_a * n_b / n)
        self._n = n

    def update(self, x: Any) -> Moments:
        """Add a chunk of rows, shape ``(rows, D)``; returns ``self``."""
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"chunks must be 2-D (rows, dim), got shape {a.shape}")
        if self._dim is None:
            self._dim = a.shape[1]
        elif a.shape[1] != self._dim:
            raise ValueError(f"chunk has dimension {a.shape[1]}, expected {self._dim}")
        if a.shape[0] == 0:
            return self
        mean_b = a.mean(axis=0)
        centred = a - mean_b
        self._combine(a.shape[0], mean_b, centred.T @ centred)
        return self

    def merge(self, other: Moments) -> Moments:
        """Fold another accumulator's rows into this one (Chan's formula); returns ``self``."""
        if other._n == 0 or other._mean is None or other._scatter is None:
            return self
        if self._dim is not None and other._dim != self._dim:
            raise ValueError(f"cannot merge dimension {other._dim} into {self._dim}")
        self._dim = other._dim
        self._combine(other._n, other._mean.copy(), other._scatter.copy())
        return self


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm(a)``, the matrix only, on every scipy >= 1.10.

    clean-fid calls ``sqrtm(a, disp=False)`` and discards the error estimate; ``disp`` only
    decides whether that estimate is returned or printed, never the square root itself. It is
    deprecated in scipy 1.16 and removed in 1.18, so it is not passed here.
    """
    out = linalg.sqrtm(a)
    if isinstance(out, tuple):  # pragma: no cover - scipy versions that always return a pair
        out = out[0]
    return np.asarray(out)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), clean-fid's recipe.

    ``d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2))``.

    If the square root of the product is not finite (singular product), clean-fid prints a
    message and retries with ``eps`` added to both diagonals; here the message is a
    ``RuntimeWarning``. If the root is complex, the real part is kept when the diagonal's
    imaginary part is within ``atol=1e-3``; otherwise ``ValueError`` (clean-fid raises there too).

    Returns:
        The squared Fréchet distance (what "FID" reports), in squared feature units; >= 0 up
        to the square root's rounding.

    Raises:
        ValueError: mean or covariance shapes disagree, or the square root has a large
            imaginary component.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different lengths: {mu1.shape} and {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"covariances have different dimensions: {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2

    # Product might be almost singular
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"fid calculation produces singular product; adding {eps} to diagonal of cov estimates",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))

    # Numerical error might give slight imaginary component
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"Fréchet distance: matrix square root has an imaginary component of {m}")
        covmean = covmean.real

    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_moments(a: Moments, b: Moments, eps: float = 1e-6) -> float:
    """:func:`frechet_distance` between the Gaussian fits of two :class:`Moments`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov, eps=eps)

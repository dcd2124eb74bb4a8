"""Vendi score (Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
Learning", TMLR 2023) of a set of CLIP embeddings with the cosine kernel.

``VS = exp(-sum_i lambda_i log lambda_i)`` over the eigenvalues ``lambda_i > 0`` of ``K / n``,
``K = Xn Xn^T`` with ``Xn`` the L2-normalised rows (the ``vendi-score`` package's ``score_K``
on that kernel, and its ``score_dual``). The nonzero eigenvalues of ``Xn Xn^T / n`` (n x n) equal
those of ``Xn^T Xn / n`` (D x D), so the D x D matrix is used: cost ``O(n D^2)``, memory ``O(D^2)``,
which handles 50,000 rows at D = 768 easily. Eigenvalues <= 0 (rounding) are ignored, as the
package does (``p[p > 0]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

__all__ = ["vendi_score"]

_CHUNK_ROWS = 8192


def vendi_score(x: Any) -> float:
    """Vendi score of embeddings ``x`` of shape ``(n, D)`` with the cosine kernel.

    Rows are L2-normalised first (in float64), so raw or normalised embeddings give the same
    value. Units: "effective number of distinct images". Range: ``1 <= VS <= min(n, D)``; 1 when
    all rows point the same way, ``n`` when they are orthogonal.

    Raises:
        ValueError: not 2-D, no rows, or a row of zero or non-finite norm.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"x must be a 2-D array of shape (rows, dim), got shape {a.shape}")
    n, d = a.shape
    if n == 0:
        raise ValueError("x has no rows")
    s = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, _CHUNK_ROWS):
        block = np.asarray(a[start : start + _CHUNK_ROWS], dtype=np.float64)
        norms = np.linalg.norm(block, axis=1)
        if not np.all((norms > 0) & np.isfinite(norms)):
            raise ValueError("x has a row of zero or non-finite norm; the cosine kernel is undefined for it")
        block = block / norms[:, None]
        s += block.T @ block
    w = linalg.eigvalsh(s / n)
    p = w[w > 0]
    return float(np.exp(-(p * np.log(p)).sum()))

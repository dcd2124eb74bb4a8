"""Rank correlations of two equal-length samples: Spearman's ρ and Kendall's τ, both scipy's, in [-1, 1].

One implementation for every consumer: agreement with people (``clipgauge validate``), agreement between
backbones (``clipgauge backbones``) and the correlations between the metrics of one run (the run summary).
Samples are plain float arrays without NaN (callers drop the rows missing a value first). A correlation is NaN
where it is undefined: too few rows, or a constant sample (scipy's ``ConstantInputWarning`` is silenced).
"""

from __future__ import annotations

import warnings

import numpy as np


def spearman_rho(x: np.ndarray, y: np.ndarray, *, min_rows: int = 2) -> float:
    """Spearman's ρ of *x* and *y* (``scipy.stats.spearmanr``: the Pearson correlation of their ranks, ties
    given their average rank), in [-1, 1]; NaN below *min_rows* rows (at least 2: ρ of two rows is ±1) or for
    a constant sample."""
    from scipy.stats import spearmanr

    if len(x) < max(2, min_rows):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning: NaN, as documented
        return float(spearmanr(x, y)[0])


def kendall_tau(x: np.ndarray, y: np.ndarray, variant: str = "b") -> float:
    """Kendall's τ (``variant`` ``"b"`` or ``"c"``, ``scipy.stats.kendalltau``) of *x* and *y*, in [-1, 1]; NaN
    below 2 rows or for a constant sample."""
    from scipy.stats import kendalltau

    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant (resampled) sample: NaN, as documented
        return float(kendalltau(x, y, variant=variant)[0])

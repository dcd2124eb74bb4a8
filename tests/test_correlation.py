"""One Spearman ρ for every consumer (the run summary, validate, backbones): scipy's, with the summary's
documented NaN below 3 rows kept through ``min_rows``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from clipgauge.pipeline import summary
from clipgauge.stats import agreement, backbones
from clipgauge.stats.correlation import kendall_tau, spearman_rho


def _samples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    x[: n // 3] = np.round(x[: n // 3])  # ties
    return x, y


@pytest.mark.parametrize("n", [2, 3, 10, 257])
def test_spearman_is_scipys(n):
    x, y = _samples(n)
    assert spearman_rho(x, y) == spearmanr(x, y).statistic
    assert kendall_tau(x, y, "c") == kendalltau(x, y, variant="c").statistic


def test_too_few_rows_or_a_constant_sample_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(spearman_rho(np.array([1.0]), np.array([2.0])))
        assert spearman_rho(np.array([1.0, 2.0]), np.array([4.0, 3.0])) == pytest.approx(-1)  # validate: 2 rows
        assert np.isnan(spearman_rho(np.array([1.0, 2.0]), np.array([4.0, 3.0]), min_rows=3))
        assert np.isnan(spearman_rho(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])))
        assert np.isnan(kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])))


def test_every_consumer_uses_the_one_function():
    assert agreement.spearman_rho is spearman_rho and backbones.spearman_rho is spearman_rho
    assert summary.spearman_rho is spearman_rho
    assert not hasattr(summary, "spearman")  # no hand-written twin left


def test_summary_correlations_are_scipys_and_nan_below_three_rows():
    x, y = _samples(40)
    x[5], y[7] = np.nan, np.nan  # rows missing a value are left out of the pair
    doc = summary.correlations({"a": x, "b": y})
    keep = ~np.isnan(x) & ~np.isnan(y)
    (pair,) = doc["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("a", "b", 38)
    assert pair["rho"] == spearmanr(x[keep], y[keep]).statistic
    two = summary.correlations({"a": np.array([1.0, 2.0, np.nan]), "b": np.array([2.0, 1.0, 3.0])})
    assert two["pairs"][0]["n"] == 2 and np.isnan(two["pairs"][0]["rho"])  # documented: NaN below 3 rows
    three = summary.correlations({"a": np.array([1.0, 2, 3, np.nan, 5]), "b": np.array([2.0, 1, 4, 3, np.nan])})
    assert three["pairs"][0]["n"] == 3 and three["pairs"][0]["rho"] == spearmanr([1, 2, 3], [2, 1, 4]).statistic

"""Scales and summary statistics, checked against values computed by hand and by numpy."""

from __future__ import annotations

import numpy as np
import pytest

from clipgauge.errors import UsageError
from clipgauge.scoring.scales import aggregate, to_scale
from clipgauge.stats.summary import bootstrap_mean_ci, bootstrap_mean_cis, describe, summarize_scores


def test_scale_definitions():
    cos = np.array([0.3, -0.2, 0.0, np.nan])
    np.testing.assert_allclose(to_scale(cos, "cosine")[:3], [0.3, -0.2, 0.0])
    np.testing.assert_allclose(to_scale(cos, "torchmetrics")[:3], [30.0, -20.0, 0.0])
    np.testing.assert_allclose(to_scale(cos, "clip-s")[:3], [0.75, 0.0, 0.0])
    assert all(np.isnan(to_scale(cos, s)[3]) for s in ("cosine", "torchmetrics", "clip-s"))
    with pytest.raises(UsageError, match="unknown scale"):
        to_scale(cos, "x100")


def test_aggregates():
    cos = np.array([0.3, -0.2, 0.1, np.nan])
    assert aggregate(cos, "cosine") == pytest.approx(0.2 / 3)
    assert aggregate(cos, "torchmetrics") == pytest.approx(100 * 0.2 / 3)
    assert aggregate(np.array([-0.3, 0.1]), "torchmetrics") == 0.0  # max(100 * mean, 0)
    assert aggregate(cos, "clip-s") == pytest.approx((0.75 + 0 + 0.25) / 3)


def test_describe_matches_numpy():
    x = np.random.default_rng(0).normal(0.3, 0.05, 500)
    d = describe(np.append(x, np.nan))
    assert d["n"] == 500
    assert d["mean"] == pytest.approx(x.mean())
    assert d["std"] == pytest.approx(x.std(ddof=1))
    assert d["median"] == pytest.approx(np.median(x))
    assert d["min"] == x.min() and d["max"] == x.max()
    half = 1.96 * x.std(ddof=1) / np.sqrt(500)  # the bootstrap CI is close to the normal one here
    assert d["ci_low"] == pytest.approx(x.mean() - half, abs=half * 0.15)
    assert d["ci_high"] == pytest.approx(x.mean() + half, abs=half * 0.15)


def test_bootstrap_is_reproducible_and_covers():
    rng = np.random.default_rng(1)
    assert bootstrap_mean_ci(np.arange(10.0)) == bootstrap_mean_ci(np.arange(10.0))
    covered = 0
    for _ in range(60):
        lo, hi, _ = bootstrap_mean_ci(rng.normal(0.0, 1.0, 60), n_resamples=2000)
        covered += lo <= 0.0 <= hi
    assert covered >= 50  # nominal 95%: 57 of 60 expected
    lo, hi, method = bootstrap_mean_ci(rng.normal(0, 1, 200_000))
    assert method == "normal approximation" and lo < 0.01 and hi > -0.01


def test_summary_counts_and_torchmetrics_clamp():
    cos = np.array([-0.2, -0.1, np.nan, -0.3])
    s = summarize_scores(cos, np.array([True, False, False, True]), [None, None, "bad", None])
    assert (s["rows"], s["scored"], s["errors"], s["truncated"]) == (4, 3, 1, 2)
    assert s["scales"]["cosine"]["mean"] == pytest.approx(-0.2)
    assert s["scales"]["torchmetrics"]["mean"] == 0.0
    assert s["scales"]["torchmetrics"]["min"] == pytest.approx(-30.0)
    assert s["scales"]["clip-s"]["max"] == 0.0


def test_bootstrap_agrees_with_scipy():
    from scipy import stats

    x = np.random.default_rng(3).gamma(2.0, 0.05, 300)
    lo, hi, _ = bootstrap_mean_ci(x)
    ref = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(7))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.03 * width)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.03 * width)


def _recipe_ci(x: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap written out: one generator per column, n indices with replacement per resample."""
    x = x[~np.isnan(x)]
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    alpha = (1 - 0.95) / 2  # 95 %: 0.025000000000000022 in floats, as the library computes it
    low, high = np.quantile(x[idx].mean(axis=1), [alpha, 1 - alpha])
    return float(low), float(high)


def test_columns_share_resamples_and_each_interval_is_the_recipes():
    rng = np.random.default_rng(5)
    cos = rng.normal(0.25, 0.1, 300)
    cos[[3, 70]] = np.nan
    other = rng.gamma(2.0, 1.0, 300)
    other[:10] = np.nan  # a different count: drawn separately
    got = bootstrap_mean_cis([cos, 100 * cos, other, np.full(5, 0.5), np.array([1.0])])
    assert got[0][:2] == _recipe_ci(cos) and got[1][:2] == _recipe_ci(100 * cos)
    assert got[2][:2] == _recipe_ci(other)
    assert got[3] == (0.5, 0.5, "constant") and np.isnan(got[4][0])
    assert got[0][2] == "percentile bootstrap, 10000 resamples, seed 0"
    s = summarize_scores(cos, np.zeros(300, bool), [None] * 300)["scales"]
    clip_s = 2.5 * np.where(np.isnan(cos), np.nan, np.maximum(cos, 0))
    for scale, x in (("cosine", cos), ("torchmetrics", 100 * cos), ("clip-s", clip_s)):
        assert (s[scale]["ci_low"], s[scale]["ci_high"]) == _recipe_ci(x), scale


def test_normal_approximation_above_20000_values_where_it_matches_the_bootstrap():
    from statistics import NormalDist

    x = np.random.default_rng(2).exponential(1.0, 20_001)  # skewed: where the two would differ most
    lo, hi, method = bootstrap_mean_ci(x[:20_000])
    assert method.startswith("percentile bootstrap")
    half = NormalDist().inv_cdf(0.975) * x[:20_000].std(ddof=1) / np.sqrt(20_000)
    mean = x[:20_000].mean()
    assert abs(lo - (mean - half)) < 0.01 * (hi - lo) and abs(hi - (mean + half)) < 0.01 * (hi - lo)
    assert bootstrap_mean_ci(x)[2] == "normal approximation"

"""Paired comparison statistics: sign-flip test, bootstrap CI, win rate, pairs needed, Holm, matching.

Checked against scipy (exact permutation test, normal quantiles), hand computation, and simulation:
the test's false-positive rate on null (shuffled) data and its power on a real difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from clipgauge.errors import UsageError
from clipgauge.stats.paired import (
    cluster_means,
    holm,
    match_runs,
    paired_test,
    required_pairs,
    sign_flip_pvalue,
)


def test_exact_sign_flip_pvalue_equals_scipy_permutation_test() -> None:
    rng = np.random.default_rng(0)
    for n, shift in ((6, 0.0), (9, 0.3), (12, 0.8), (13, -0.5)):
        a = rng.normal(0.3, 0.05, n)
        b = a - shift * 0.05 + rng.normal(0, 0.05, n)
        ours, method = sign_flip_pvalue(a - b, n_resamples=10_000)
        assert "exact" in method
        ref = stats.permutation_test(
            (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", alternative="two-sided",
            n_resamples=np.inf, vectorized=False,
        )
        assert ours == pytest.approx(ref.pvalue, abs=1e-12)


def test_exact_sign_flip_by_hand() -> None:
    # d = (1, 2, 3): |sum| = 6 is reached only by (+,+,+) and (-,-,-): p = 2/8
    p, _ = sign_flip_pvalue(np.array([1.0, 2.0, 3.0]))
    assert p == pytest.approx(0.25)
    # d = (1, -1): |sum| = 0, every flip is as extreme: p = 1
    assert sign_flip_pvalue(np.array([1.0, -1.0]))[0] == 1.0
    assert sign_flip_pvalue(np.zeros(5))[0] == 1.0
    assert math.isnan(sign_flip_pvalue(np.array([]))[0])


def test_monte_carlo_pvalue_is_close_to_exact_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.02, 0.05, 16)
    exact, m1 = sign_flip_pvalue(d, n_resamples=2**16)
    mc, m2 = sign_flip_pvalue(d, n_resamples=20_000, seed=3)
    assert "exact" in m1 and "random" in m2
    assert abs(mc - exact) < 0.01
    assert sign_flip_pvalue(d, n_resamples=20_000, seed=3)[0] == mc
    # never exactly zero: (1 + hits) / (1 + resamples)
    big = rng.normal(1.0, 0.1, 200)
    assert sign_flip_pvalue(big, n_resamples=999)[0] == pytest.approx(1 / 1000)


def test_paired_test_statistics_by_hand() -> None:
    a = np.array([0.30, 0.31, 0.29, 0.35, 0.28, np.nan])
    b = np.array([0.28, 0.31, 0.30, 0.30, 0.27, 0.25])
    t = paired_test(a, b)
    d = np.array([0.02, 0.0, -0.01, 0.05, 0.01])
    assert t.n == 5
    assert t.mean_diff == pytest.approx(d.mean())
    assert t.sd_diff == pytest.approx(d.std(ddof=1))
    assert (t.wins, t.ties, t.losses) == (3, 1, 1)
    assert t.win_rate == pytest.approx(0.6) and t.tie_rate == pytest.approx(0.2) and t.loss_rate == pytest.approx(0.2)
    assert t.mean_a == pytest.approx(np.nanmean(a[:5])) and t.mean_b == pytest.approx(b[:5].mean())
    assert t.ci_low <= t.mean_diff <= t.ci_high


def test_bootstrap_ci_matches_t_interval_for_normal_differences() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0.3, 0.04, 400)
    b = a - 0.01 + rng.normal(0, 0.03, 400)
    t = paired_test(a, b)
    d = a - b
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    assert t.ci_low == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert t.ci_high == pytest.approx(d.mean() + half, abs=0.15 * half)


def test_required_pairs_formula() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 1.95996 + 0.84162
    assert required_pairs(0.01, 0.05) == math.ceil((z * 0.05 / 0.01) ** 2) == 197
    assert required_pairs(-0.01, 0.05) == 197
    assert required_pairs(0.01, 0.05, alpha=0.01, power=0.9) == math.ceil(
        ((stats.norm.ppf(0.995) + stats.norm.ppf(0.9)) * 5) ** 2)
    assert math.isinf(required_pairs(0.0, 0.05))
    assert required_pairs(1.0, 0.0) == 2


def test_required_pairs_gives_the_stated_power() -> None:
    """With the estimated number of pairs, the sign-flip test rejects about 80% of the time."""
    rng = np.random.default_rng(3)
    n = int(required_pairs(0.01, 0.05))
    rejections = [sign_flip_pvalue(rng.normal(0.01, 0.05, n), n_resamples=1000, seed=i)[0] < 0.05
                  for i in range(200)]
    assert 0.70 <= np.mean(rejections) <= 0.90


def _prompt_runs(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Two runs over the same n prompts: a shared per-prompt difficulty plus image noise; B is A + shift."""
    difficulty = rng.normal(0.30, 0.04, n)
    return difficulty + rng.normal(0, 0.02, n), difficulty + shift + rng.normal(0, 0.02, n)


def test_false_positive_rate_on_null_data_is_near_alpha() -> None:
    rng = np.random.default_rng(4)
    rejections = []
    for i in range(200):
        a, b = _prompt_runs(rng, 60, 0.0)
        rejections.append(paired_test(a, b, n_resamples=1000, seed=i).p_value < 0.05)
    assert 0.015 <= np.mean(rejections) <= 0.095


def test_false_positive_rate_on_shuffled_labels_is_near_alpha() -> None:
    """Two runs that really differ, with A/B labels shuffled within each pair: no difference remains."""
    rng = np.random.default_rng(5)
    a0, b0 = _prompt_runs(rng, 80, 0.02)
    rejections = []
    for i in range(200):
        swap = rng.random(a0.size) < 0.5
        a, b = np.where(swap, b0, a0), np.where(swap, a0, b0)
        rejections.append(paired_test(a, b, n_resamples=1000, seed=i).p_value < 0.05)
    assert 0.015 <= np.mean(rejections) <= 0.095
    assert paired_test(a0, b0).p_value < 0.001  # unshuffled, the difference is found


def test_power_on_a_real_difference() -> None:
    rng = np.random.default_rng(6)
    # shift 0.01 with noise sd 0.02·√2 per pair: 0.35 sd; at n = 100 power ≈ 0.93
    found = [paired_test(*_prompt_runs(rng, 100, 0.01), n_resamples=1000, seed=i).p_value < 0.05 for i in range(50)]
    assert np.mean(found) >= 0.8
    big = [paired_test(*_prompt_runs(rng, 100, 0.02), n_resamples=1000, seed=i).p_value < 0.05 for i in range(20)]
    assert all(big)


def test_holm_adjustment_by_hand() -> None:
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, float("nan"), 0.03])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.03)


def test_match_runs_reports_unmatched_and_normalises_keys() -> None:
    a = [{"prompt_id": 1, "seed": 0}, {"prompt_id": 2, "seed": 0}, {"prompt_id": 3, "seed": 0}, {"seed": 1}]
    b = [{"prompt_id": "2", "seed": "0"}, {"prompt_id": "1.0", "seed": "0"}, {"prompt_id": "9", "seed": "0"}]
    m = match_runs(a, b, ("prompt_id", "seed"))
    assert m.keys == [("1", "0"), ("2", "0")]
    assert m.index_a == [0, 1] and m.index_b == [1, 0]
    assert m.only_a == [("3", "0")] and m.only_b == [("9", "0")]
    assert m.no_key_a == 1 and m.no_key_b == 0
    u = m.unmatched()
    assert (u["only_a"], u["only_b"], u["no_key_a"]) == (1, 1, 1)


def test_match_runs_refuses_a_key_that_does_not_identify_rows() -> None:
    a = [{"prompt_id": "p1", "seed": s} for s in range(3)]
    with pytest.raises(UsageError, match="prompt_id,seed"):
        match_runs(a, a, ("prompt_id",))
    assert match_runs(a, a, ("prompt_id", "seed")).n_matched == 3


def test_cluster_means_by_hand() -> None:
    a = np.array([0.1, 0.3, 0.5, np.nan, 0.7])
    b = np.array([0.0, 0.1, 0.2, 0.3, np.nan])
    ma, mb, pairs = cluster_means(a, b, ["p", "p", "q", "q", "r"])
    assert pairs == 3  # the NaN pairs are left out; cluster r has none left and disappears
    assert ma == pytest.approx([0.2, 0.5]) and mb == pytest.approx([0.05, 0.2])


def _seeded_runs(rng, n_prompts=40, seeds=4, interaction=0.02):
    """Two runs with no overall difference but a per-prompt preference (model × prompt interaction) shared by
    all seeds of a prompt: seeds are not independent evidence."""
    difficulty = rng.normal(0.30, 0.04, n_prompts)
    pref = rng.normal(0, interaction, n_prompts)
    prompt = np.repeat(np.arange(n_prompts), seeds)
    a = difficulty[prompt] + pref[prompt] / 2 + rng.normal(0, 0.01, prompt.size)
    b = difficulty[prompt] - pref[prompt] / 2 + rng.normal(0, 0.01, prompt.size)
    return a, b, prompt


def test_clustering_keeps_the_false_positive_rate_with_correlated_seeds() -> None:
    rng = np.random.default_rng(7)
    clustered, naive = [], []
    for i in range(200):
        a, b, prompt = _seeded_runs(rng)
        ma, mb, _ = cluster_means(a, b, prompt.tolist())
        clustered.append(sign_flip_pvalue(ma - mb, n_resamples=1000, seed=i)[0] < 0.05)
        naive.append(sign_flip_pvalue(a - b, n_resamples=1000, seed=i)[0] < 0.05)
    assert 0.015 <= np.mean(clustered) <= 0.095
    assert np.mean(naive) > 0.15  # seeds of a prompt taken as independent: "differences" that are not there

"""Exactness of clipgauge.distribution against the published reference implementations.

References written out below (translated line by line, never calling clipgauge):
google-research ``cmmd/distance.py`` ``mmd``; clean-fid ``cleanfid/fid.py`` ``frechet_distance``;
torchmetrics 1.9.0 ``image/kid.py`` (imported); ``vendi-score`` ``score_K`` (imported).
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from scipy import linalg

from clipgauge.distribution.bootstrap import bootstrap_ci, bootstrap_distribution
from clipgauge.distribution.frechet import Moments, frechet_distance, frechet_distance_moments
from clipgauge.distribution.kid import kid, kid_from_subsets, kid_subsets
from clipgauge.distribution.mmd import cmmd
from clipgauge.distribution.vendi import vendi_score

REL = 1e-6


def unit_rows(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    a = rng.standard_normal((n, d))
    a[:, 0] += shift
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


# --- google-research cmmd/distance.py, jnp -> np line by line, float64 ----------------------------
_SIGMA = 10
_SCALE = 1000


def reference_mmd(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))

    gamma = 1 / (2 * _SIGMA**2)
    k_xx = np.mean(
        np.exp(-gamma * (-2 * np.matmul(x, x.T) + np.expand_dims(x_sqnorms, 1) + np.expand_dims(x_sqnorms, 0)))
    )
    k_xy = np.mean(
        np.exp(-gamma * (-2 * np.matmul(x, y.T) + np.expand_dims(x_sqnorms, 1) + np.expand_dims(y_sqnorms, 0)))
    )
    k_yy = np.mean(
        np.exp(-gamma * (-2 * np.matmul(y, y.T) + np.expand_dims(y_sqnorms, 1) + np.expand_dims(y_sqnorms, 0)))
    )

    return _SCALE * (k_xx + k_yy - 2 * k_xy)


def unbiased_mmd(x, y, sigma=10.0, scale=1000.0):
    """Gretton et al. 2012 Eq. (3), from pairwise distances (scipy), diagonals removed."""
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    kxx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * sigma**2))
    kyy = np.exp(-cdist(y, y, "sqeuclidean") / (2 * sigma**2))
    kxy = np.exp(-cdist(x, y, "sqeuclidean") / (2 * sigma**2))
    off = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return scale * (off - 2 * kxy.mean())


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(22)
    return unit_rows(rng, 300, 64), unit_rows(rng, 250, 64, shift=0.8)


@pytest.mark.parametrize("block_rows", [7, 64, 4096])
def test_cmmd_matches_google_research(xy, block_rows):
    x, y = xy
    ref = reference_mmd(x, y)
    assert ref > 0.1  # a clearly non-zero distance, so the relative check means something
    assert cmmd(x, y, block_rows=block_rows) == pytest.approx(ref, rel=REL)


def test_cmmd_torch_and_dtypes_match_reference(xy):
    x, y = xy
    ref = reference_mmd(x, y)
    assert cmmd(torch.from_numpy(x), torch.from_numpy(y), block_rows=33) == pytest.approx(ref, rel=REL)
    assert cmmd(x.astype(np.float64), y.astype(np.float16).astype(np.float64), block_rows=50) == pytest.approx(
        reference_mmd(x, y.astype(np.float16)), rel=REL
    )


def test_cmmd_same_distribution_small_and_nonnegative():
    rng = np.random.default_rng(5)
    x, y = unit_rows(rng, 200, 32), unit_rows(rng, 220, 32)
    ref = reference_mmd(x, y)
    assert cmmd(x, y, block_rows=16) == pytest.approx(ref, rel=REL)
    assert cmmd(x, x, block_rows=16) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("block_rows", [5, 1000])
def test_cmmd_unbiased_matches_explicit_formula(xy, block_rows):
    x, y = xy
    ref = unbiased_mmd(x, y)
    assert cmmd(x, y, unbiased=True, block_rows=block_rows) == pytest.approx(ref, rel=REL)
    assert ref != pytest.approx(reference_mmd(x, y), rel=1e-3)  # the two estimators differ
    rng = np.random.default_rng(9)
    a, b = unit_rows(rng, 40, 8), unit_rows(rng, 30, 8)
    assert cmmd(a, b, unbiased=True, sigma=0.5, scale=1.0, block_rows=block_rows) == pytest.approx(
        unbiased_mmd(a, b, sigma=0.5, scale=1.0), rel=REL
    )


def test_cmmd_never_holds_a_full_kernel():
    rng = np.random.default_rng(1)
    x, y = unit_rows(rng, 3000, 16), unit_rows(rng, 3000, 16)
    tracemalloc.start()
    cmmd(x, y, block_rows=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3000 * 3000 * 8 / 8  # a full 3000 x 3000 float64 kernel is 72 MB; allow 9 MB


def test_cmmd_refuses_bad_shapes():
    with pytest.raises(ValueError, match="dimension"):
        cmmd(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="2 rows"):
        cmmd(np.ones((1, 4)), np.ones((3, 4)), unbiased=True)


# --- clean-fid cleanfid/fid.py frechet_distance, verbatim ----------------------------------------
def _sqrtm_disp_false(a):
    # clean-fid calls linalg.sqrtm(..., disp=False) (deprecated in scipy 1.16, removed in 1.18)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return linalg.sqrtm(a, disp=False)
        except TypeError:  # scipy >= 1.18
            return linalg.sqrtm(a), None


def cleanfid_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)
    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)

    assert mu1.shape == mu2.shape, "Training and test mean vectors have different lengths"
    assert sigma1.shape == sigma2.shape, "Training and test covariances have different dimensions"

    diff = mu1 - mu2

    # Product might be almost singular
    covmean, _ = _sqrtm_disp_false(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        msg = ("fid calculation produces singular product; adding %s to diagonal of cov estimates") % eps  # noqa: UP031 (verbatim)
        print(msg)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))

    # Numerical error might give slight imaginary component
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError("Imaginary component {}".format(m))  # noqa: UP032 (verbatim)
        covmean = covmean.real

    tr_covmean = np.trace(covmean)

    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean


def cleanfid_fid_from_feats(feats1, feats2):
    mu1, sig1 = np.mean(feats1, axis=0), np.cov(feats1, rowvar=False)
    mu2, sig2 = np.mean(feats2, axis=0), np.cov(feats2, rowvar=False)
    return cleanfid_frechet_distance(mu1, sig1, mu2, sig2)


def chunked_moments(a: np.ndarray, sizes: list[int]) -> Moments:
    mom, start = Moments(), 0
    for s in sizes:
        mom.update(a[start : start + s])
        start += s
    mom.update(a[start:])
    return mom


def test_moments_uneven_chunks_match_np_cov():
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((1000, 24)) * 3 + 50).astype(np.float32)  # large mean: stability matters
    mom = chunked_moments(a, [1, 2, 333, 7, 0, 400])
    ref = np.cov(a, rowvar=False)
    assert mom.n == 1000
    np.testing.assert_allclose(mom.mean, a.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mom.cov, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    left, right = Moments.of(a[:123]), Moments.of(a[123:])
    np.testing.assert_allclose(left.merge(right).cov, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_frechet_matches_cleanfid_from_moments():
    rng = np.random.default_rng(4)
    f1 = unit_rows(rng, 600, 32)
    f2 = unit_rows(rng, 500, 32, shift=0.5)
    ref = cleanfid_fid_from_feats(f1, f2)
    m1, m2 = chunked_moments(f1, [100, 55, 1]), chunked_moments(f2, [250, 3])
    assert ref > 0.02
    assert frechet_distance_moments(m1, m2) == pytest.approx(ref, rel=REL)
    assert frechet_distance(m1.mean, m1.cov, m2.mean, m2.cov) == pytest.approx(ref, rel=REL)


def test_frechet_singular_covariance_matches_cleanfid():
    rng = np.random.default_rng(6)
    f1, f2 = unit_rows(rng, 20, 48), unit_rows(rng, 25, 48, shift=1.0)  # n < D: singular covariances
    mu1, s1 = f1.mean(axis=0, dtype=np.float64), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(axis=0, dtype=np.float64), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = cleanfid_frechet_distance(mu1, s1, mu2, s2)
        ours = frechet_distance(mu1, s1, mu2, s2)
        via_moments = frechet_distance_moments(Moments.of(f1), Moments.of(f2))
    assert ours == pytest.approx(ref, rel=REL)
    assert via_moments == pytest.approx(ref, rel=1e-4)  # sqrtm of a singular product amplifies rounding


def test_frechet_eps_retry_matches_cleanfid(monkeypatch):
    """The singular-product branch: the first square root is not finite, retry with eps on the diagonals."""
    real_sqrtm = linalg.sqrtm
    calls = {"n": 0}

    def flaky_sqrtm(a, disp=True):
        calls["n"] += 1
        out = real_sqrtm(a)
        if calls["n"] % 2 == 1:  # the first call of each frechet_distance is "singular"
            out = np.full_like(out, np.nan)
        return out if disp else (out, None)

    monkeypatch.setattr(linalg, "sqrtm", flaky_sqrtm)
    rng = np.random.default_rng(7)
    f1, f2 = unit_rows(rng, 60, 10), unit_rows(rng, 50, 10, shift=0.5)
    args = (
        f1.mean(0, dtype=np.float64),
        np.cov(f1, rowvar=False),
        f2.mean(0, dtype=np.float64),
        np.cov(f2, rowvar=False),
    )
    ref = cleanfid_frechet_distance(*args, eps=1e-2)
    with pytest.warns(RuntimeWarning, match="singular product"):
        ours = frechet_distance(*args, eps=1e-2)
    assert calls["n"] == 4
    assert ours == pytest.approx(ref, rel=REL)
    assert ours != pytest.approx(cleanfid_fid_from_feats(f1, f2), rel=1e-4)  # eps=1e-2 changes the value


def test_frechet_raises_where_cleanfid_raises():
    s1, s2, mu = np.diag([-1.0, 1.0]), np.eye(2), np.zeros(2)
    with pytest.raises(ValueError, match="Imaginary"):
        cleanfid_frechet_distance(mu, s1, mu, s2)
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(mu, s1, mu, s2)
    with pytest.raises(ValueError, match="different lengths"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))


# --- torchmetrics 1.9.0 KID ---------------------------------------------------------------------
def test_kid_subsets_match_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(8)
    x, y = unit_rows(rng, 120, 16).astype(np.float64), unit_rows(rng, 90, 16, shift=0.3).astype(np.float64)
    pairs = kid_subsets(len(x), len(y), subsets=7, subset_size=50, seed=3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    scores = torch.stack([poly_mmd(tx[torch.from_numpy(ix)], ty[torch.from_numpy(iy)]) for ix, iy in pairs])
    mean, std = kid_from_subsets(x, y, pairs)
    assert mean == pytest.approx(scores.mean().item(), rel=1e-5)
    assert std == pytest.approx(scores.std(unbiased=False).item(), rel=1e-5)  # torchmetrics' compute()
    assert std != pytest.approx(scores.std(unbiased=True).item(), rel=1e-3)
    # non-default kernel parameters
    scores2 = torch.stack(
        [poly_mmd(tx[torch.from_numpy(ix)], ty[torch.from_numpy(iy)], 2, 0.3, 0.5) for ix, iy in pairs]
    )
    mean2, _ = kid_from_subsets(x, y, pairs, degree=2, gamma=0.3, coef0=0.5)
    assert mean2 == pytest.approx(scores2.mean().item(), rel=1e-5)


def test_kid_matches_torchmetrics_metric_end_to_end():
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(10)
    x, y = unit_rows(rng, 80, 12).astype(np.float64), unit_rows(rng, 70, 12, shift=0.4).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=9, subset_size=40)
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    torch.manual_seed(17)
    ref_mean, ref_std = metric.compute()
    mean, std = kid(x, y, subsets=9, subset_size=40, seed=17)
    assert mean == pytest.approx(ref_mean.item(), rel=1e-5)
    assert std == pytest.approx(ref_std.item(), rel=1e-5)
    assert kid(x, y, subsets=9, subset_size=40, seed=18)[0] != pytest.approx(mean, rel=1e-6)


def test_kid_refuses_large_subsets():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="subset_size=11"):
        kid(x, np.zeros((20, 4)), subset_size=11)
    with pytest.raises(ValueError, match="subset_size=11"):
        kid(np.zeros((20, 4)), x, subset_size=11)


# --- vendi-score ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "d"), [(200, 64), (30, 64), (500, 8)])
def test_vendi_matches_package_score_k(n, d):
    vendi = pytest.importorskip("vendi_score.vendi")
    rng = np.random.default_rng(n + d)
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, size=(n, 1))  # raw, not yet unit-norm
    x[:, 0] += 1.0
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = vendi.score_K(xn @ xn.T)
    ours = vendi_score(x.astype(np.float32))
    assert ours == pytest.approx(ref, rel=REL)
    assert 1.0 <= ours <= min(n, d)


def test_vendi_extremes():
    assert vendi_score(np.tile([[0.0, 2.0, 0.0]], (50, 1))) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0, rel=1e-9)
    with pytest.raises(ValueError, match="zero"):
        vendi_score(np.zeros((3, 4)))


# --- bootstrap -----------------------------------------------------------------------------------
def _mean_diff(a, b):
    return float(a[:, 0].mean() - b[:, 0].mean())


def test_bootstrap_same_seed_same_interval_despite_global_state():
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((150, 3)), rng.standard_normal((120, 3)) + 0.5
    np.random.seed(1)
    torch.manual_seed(1)
    first = bootstrap_ci(_mean_diff, x, y, resamples=100, seed=7)
    np.random.seed(2)
    torch.manual_seed(2)
    second = bootstrap_ci(_mean_diff, x, y, resamples=100, seed=7)
    assert first == second
    assert bootstrap_ci(_mean_diff, x, y, resamples=100, seed=8) != first
    point = _mean_diff(x, y)
    assert first[0] < point < first[1]
    assert first[0] < -0.2 and first[1] < 0.0  # the shift of 0.5 is detected


def test_bootstrap_follows_documented_scheme():
    rng = np.random.default_rng(13)
    x, y = rng.standard_normal((40, 2)), rng.standard_normal((30, 2))
    got = bootstrap_distribution(_mean_diff, x, y, resamples=25, seed=4)
    g = np.random.default_rng(4)
    want = []
    for _ in range(25):
        xi = g.integers(0, 40, 40)
        yi = g.integers(0, 30, 30)
        want.append(_mean_diff(x[xi], y[yi]))
    np.testing.assert_array_equal(got, np.array(want))
    lo, hi = bootstrap_ci(_mean_diff, x, y, resamples=25, seed=4, level=0.9)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(want, [0.05, 0.95])), rel=1e-12)


def test_bootstrap_fixed_reference_and_max_rows():
    rng = np.random.default_rng(14)
    x = unit_rows(rng, 400, 8)
    ref = Moments.of(unit_rows(rng, 300, 8, shift=0.5))

    def fd_to_ref(a, mom):
        return frechet_distance_moments(Moments.of(a), mom)

    lo, hi = bootstrap_ci(fd_to_ref, x, ref, resamples=60, seed=0, resample_y=False)
    assert lo <= fd_to_ref(x, ref) <= hi
    assert bootstrap_ci(fd_to_ref, x, ref, resamples=60, seed=0, resample_y=False) == (lo, hi)
    y = unit_rows(rng, 500, 8, shift=0.5)
    seen: list[tuple[int, int]] = []

    def stat(a, b):
        seen.append((len(a), len(b)))
        return cmmd(a, b)

    lo2, hi2 = bootstrap_ci(stat, x, y, resamples=20, seed=1, max_rows=100)
    assert set(seen) == {(100, 100)}
    assert 0 < lo2 <= hi2

"""Linear-probe transfer of a backbone's image embeddings (``clipgauge backbones --linear-probe COLUMN``).

After CLIP_benchmark's ``clip_benchmark/metrics/linear_probe.py``: L2-normalised image features, an
L2-regularised linear classifier, the weight decay λ chosen on a validation split by its sweep — 97 values
``logspace(-6, 2)``, first the 7 of ``logspace(-6, 2, 7)``, then around the best with steps of 8, 4, 2 and 1
(``tune_weight_decay``/``find_peak``: the first value whose validation top-1 is strictly higher wins, starting
from index 0 at accuracy 0) — and k-shot training sets of the first k rows per class in a seeded permutation.

Deviations (also in ``docs/commands/backbones.md``):

* the classifier is scikit-learn's multinomial :class:`~sklearn.linear_model.LogisticRegression` (L-BFGS, as
  the CLIP paper) instead of CLIP_benchmark's torch ``Linear`` trained by AdamW with a cosine schedule; its
  weight decay λ on the mean loss is sklearn's ``C = 1 / (λ · n_train)``;
* there is no separate test set: the rows are split, stratified and seeded, into train / validation / test;
* full data: tuned on train vs validation, refit on train + validation, as CLIP_benchmark; k-shot: tuned on
  the k-shot set vs the validation split and refit on the k-shot set only (CLIP_benchmark refits on the k-shot
  set plus the whole validation split, which would no longer be k-shot);
* k-shot runs are repeated with seeded draws (the same draws for every backbone) and reported with a t-based
  95% CI; a k that some class cannot fill is skipped (CLIP_benchmark stops with "insufficient data").
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: CLIP_benchmark's weight-decay grid and its first, coarse sweep
WD_LIST = np.logspace(-6, 2, num=97)
WD_INIT_IDX = [i for i, v in enumerate(WD_LIST) if np.isclose(np.logspace(-6, 2, num=7), v).any()]


def normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64)."""
    x = np.asarray(features, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_probe(x: np.ndarray, y: np.ndarray, weight_decay: float) -> Any:
    """A multinomial logistic regression on *x*, *y* with L2 penalty λ = *weight_decay* on the mean loss."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        from ..errors import UsageError

        raise UsageError("the linear probe needs scikit-learn: pip install 'clipgauge[probe]'") from None
    model = LogisticRegression(C=1.0 / (weight_decay * len(x)), max_iter=1000)
    return model.fit(x, y)


def probe_top1(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a fitted probe on *x*, *y*."""
    return float(np.mean(model.predict(x) == y))


def tune_weight_decay(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """CLIP_benchmark's sweep: the λ of :data:`WD_LIST` with the best validation top-1."""
    seen: dict[int, float] = {}

    def accuracy(idx: int) -> float:
        if idx not in seen:
            seen[idx] = probe_top1(fit_probe(x_train, y_train, float(WD_LIST[idx])), x_val, y_val)
        return seen[idx]

    def find_peak(idxs: list[int]) -> int:
        best, max_acc = 0, 0.0
        for idx in idxs:
            acc = accuracy(idx)
            if max_acc < acc:
                best, max_acc = idx, acc
        return best

    peak = find_peak(WD_INIT_IDX)
    step = 8
    while step > 0:
        left, right = max(peak - step, 0), min(peak + step, len(WD_LIST) - 1)
        peak = find_peak([left, peak, right])
        step //= 2
    return float(WD_LIST[peak])


def split_rows(labels: np.ndarray, seed: int, test_fraction: float = 0.3, val_fraction: float = 0.2
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded (train, validation, test) row indices of the rows with a label (``labels >= 0``): per
    class, a shuffled ``round(test_fraction · n)`` (at least 1 of 2+) to test, then ``round(val_fraction · rest)``
    (at least 1 of 2+) to validation."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels[labels >= 0]):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(test_fraction * len(idx))) if len(idx) >= 2 else 0
        rest = idx[n_test:]
        n_val = max(1, round(val_fraction * len(rest))) if len(rest) >= 2 else 0
        test.extend(idx[:n_test])
        val.extend(rest[:n_val])
        train.extend(rest[n_val:])
    return tuple(np.sort(np.asarray(s, dtype=np.int64)) for s in (train, val, test))  # type: ignore[return-value]


def kshot_rows(train: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """The first *k* rows of each class in a permutation of *train* (CLIP_benchmark's few-shot draw); None when a
    class has fewer than *k*."""
    counts: dict[int, int] = {}
    chosen = []
    for p in rng.permutation(train):
        c = int(labels[p])
        if counts.get(c, 0) < k:
            counts[c] = counts.get(c, 0) + 1
            chosen.append(p)
    if any(v != k for v in counts.values()):
        return None
    return np.sort(np.asarray(chosen, dtype=np.int64))


def probe(features: np.ndarray, labels: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray,
          test_rows: np.ndarray, refit_rows: np.ndarray) -> dict[str, float]:
    """Tune λ on *fit_rows* vs *val_rows*, refit on *refit_rows*, and return ``{"top1", "weight_decay"}`` on
    *test_rows* (features L2-normalised first)."""
    x = normalize(features)
    wd = tune_weight_decay(x[fit_rows], labels[fit_rows], x[val_rows], labels[val_rows])
    model = fit_probe(x[refit_rows], labels[refit_rows], wd)
    return {"top1": probe_top1(model, x[test_rows], labels[test_rows]), "weight_decay": wd}


def mean_ci(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and t-based CI of repeated accuracies (CI None for fewer than 2)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"mean": float(v.mean()), "ci_low": None, "ci_high": None}
    if len(v) >= 2:
        half = float(t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def linear_probe(features: dict[str, np.ndarray], labels: np.ndarray, *, ks: tuple[int, ...] = (1, 2, 4, 8, 16),
                 repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """Linear-probe top-1 of every backbone (*features*: name → (n, D) image embeddings of the same rows;
    *labels*: per-row class index, −1 for none). Returns ``{"split": {...}, "rows": [...], "skipped": [...]}``:
    one row per backbone and k (``"full"`` for all training data) with ``top1`` (mean over repeats), ``ci_low``,
    ``ci_high``, ``runs`` (each repeat's top-1) and ``weight_decay`` (each repeat's λ)."""
    labels = np.asarray(labels, dtype=np.int64)
    train, val, test = split_rows(labels, seed)
    if len(train) == 0 or len(val) == 0 or len(test) == 0 or len(np.unique(labels[train])) < 2:
        raise ValueError("the linear probe needs at least two classes with enough rows for train, validation "
                         "and test splits (3 or more rows each)")
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    draws: dict[int, list[np.ndarray]] = {}
    for k in ks:
        got = [kshot_rows(train, labels, k, np.random.default_rng([seed, k, r])) for r in range(repeats)]
        if any(g is None for g in got):
            skipped.append(k)
        else:
            draws[k] = [g for g in got if g is not None]
    for name, feats in features.items():
        for k, sets in draws.items():
            runs = [probe(feats, labels, s, val, test, s) for s in sets]
            rows.append({"backbone": name, "k": k, **_summary(runs)})
        full = probe(feats, labels, train, val, test, np.concatenate([train, val]))
        rows.append({"backbone": name, "k": "full", **_summary([full])})
    return {"split": {"train": len(train), "validation": len(val), "test": len(test), "seed": seed},
            "test_rows": test.tolist(), "rows": rows, "skipped": skipped, "repeats": repeats}


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    stats = mean_ci([r["top1"] for r in runs])
    return {"top1": stats["mean"], "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
            "runs": [r["top1"] for r in runs], "weight_decay": [r["weight_decay"] for r in runs]}

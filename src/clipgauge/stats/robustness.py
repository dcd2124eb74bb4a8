"""Robustness of a backbone's scores to image corruptions (``clipgauge backbones --robustness``).

Per backbone, corruption and severity, from per-row cosines of the clean and the corrupted image with the row's
prompt: the drift (mean |Δcosine|) and the rank stability (Spearman ρ between clean and corrupted per-row scores,
scipy). With zero-shot predictions: top-1 per severity, and per corruption the corruption error CE (mean top-1
error over the five severities) and the relative CE (mean of error − clean error), averaged over corruptions
into mCE and relative mCE. ImageNet-C divides both by AlexNet's errors; there is no reference model here, so
they are left unnormalised (fractions in [0, 1]).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def score_drift(clean: np.ndarray, corrupted: np.ndarray) -> dict[str, Any]:
    """``{"n", "mean_abs_delta", "spearman"}`` over the rows where both cosines are finite (ρ None under 2 rows
    or a constant side)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(clean, dtype=np.float64), np.asarray(corrupted, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "mean_abs_delta": None, "spearman": None}
    rho = None
    if n >= 2 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
        rho = float(spearmanr(a[ok], b[ok])[0])
    return {"n": n, "mean_abs_delta": float(np.mean(np.abs(b[ok] - a[ok]))), "spearman": rho}


def top1(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """The share of rows with a known truth (``truth >= 0``) whose prediction is right; None without one."""
    p, t = np.asarray(predicted), np.asarray(truth)
    known = t >= 0
    return float(np.mean(p[known] == t[known])) if known.any() else None


def corruption_errors(clean_top1: float, top1_by_severity: list[float]) -> dict[str, float]:
    """``{"ce", "relative_ce"}`` of one corruption: mean top-1 error over severities, and the mean of (error −
    clean error)."""
    errors = 1.0 - np.asarray(top1_by_severity, dtype=np.float64)
    clean_error = 1.0 - float(clean_top1)
    return {"ce": float(errors.mean()), "relative_ce": float((errors - clean_error).mean())}


def robustness_tables(clean: dict[str, np.ndarray], corrupted: dict[str, dict[str, np.ndarray]],
                      predictions: dict[str, dict[str, np.ndarray]] | None = None,
                      truth: np.ndarray | None = None) -> dict[str, Any]:
    """The robustness tables of every backbone.

    *clean*: backbone → per-row clean cosines (n,); *corrupted*: backbone → corruption → cosines (severities, n);
    *predictions* (optional, with *truth*: per-row true label index, −1 unknown): backbone → ``"clean"`` (n,) and
    each corruption (severities, n) of predicted label indices.

    Returns ``{"rows": [...], "summary": [...]}``: one row per backbone, corruption and severity
    (``mean_abs_delta``, ``spearman``, ``n`` and with predictions ``top1``), and per backbone and corruption the
    means over severities (``mean_abs_delta``, ``spearman``, with predictions ``ce`` and ``relative_ce``) plus a
    per-backbone line (corruption ``"all"``) with ``clean_top1``, ``mce`` and ``relative_mce``.
    """
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for name, base in clean.items():
        preds = (predictions or {}).get(name) if truth is not None else None
        clean_acc = top1(preds["clean"], truth) if preds is not None and truth is not None else None
        ces: list[dict[str, float]] = []
        for corruption, scores in corrupted[name].items():
            per = []
            for s, values in enumerate(scores, start=1):
                entry = {"backbone": name, "corruption": corruption, "severity": s, **score_drift(base, values)}
                if preds is not None and truth is not None:
                    entry["top1"] = top1(preds[corruption][s - 1], truth)
                per.append(entry)
            rows.extend(per)
            line: dict[str, Any] = {"backbone": name, "corruption": corruption,
                                    "mean_abs_delta": _mean([e["mean_abs_delta"] for e in per]),
                                    "spearman": _mean([e["spearman"] for e in per])}
            accs = [e.get("top1") for e in per]
            if clean_acc is not None and all(a is not None for a in accs):
                line.update(corruption_errors(clean_acc, [float(a) for a in accs]))  # type: ignore[arg-type]
                ces.append(line)
            summary.append(line)
        total: dict[str, Any] = {"backbone": name, "corruption": "all", "clean_top1": clean_acc,
                                 "mean_abs_delta": _mean([e["mean_abs_delta"] for e in rows if e["backbone"] == name]),
                                 "spearman": _mean([e["spearman"] for e in rows if e["backbone"] == name])}
        if ces:
            total["mce"] = float(np.mean([c["ce"] for c in ces]))
            total["relative_mce"] = float(np.mean([c["relative_ce"] for c in ces]))
        summary.append(total)
    return {"rows": rows, "summary": summary}


def _mean(values: list[Any]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return float(np.mean(got)) if got else None

"""Score scales. Every scale is a function of the raw cosine; the cosine is always kept alongside.

=============  =====================================  ===================================================
scale          per row                                aggregate ("mean")
=============  =====================================  ===================================================
cosine         cos(image, prompt), in [-1, 1]         mean of cosines
torchmetrics   100 × cosine, in [-100, 100]           max(100 × mean cosine, 0), as torchmetrics reports
clip-s         2.5 × max(cosine, 0), in [0, 2.5]      mean of per-row CLIP-S (Hessel et al. 2021)
angle          degrees(arccos(cosine)), in [0, 180]   mean of per-row angles (LOWER is better)
=============  =====================================  ===================================================

Every scale but ``angle`` is higher-is-better (:func:`higher_is_better`). The mean angle is not the angle of
the mean cosine: arccos is not linear, so ``mean(arccos(c)) != arccos(mean(c))`` in general.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

SCALES = ("cosine", "torchmetrics", "clip-s", "angle")

#: whether a higher score is better in each scale (every scale but ``angle``, where a smaller angle is better)
HIGHER_IS_BETTER: dict[str, bool] = {"cosine": True, "torchmetrics": True, "clip-s": True, "angle": False}

SCALE_DEFINITIONS: dict[str, dict[str, str]] = {
    "cosine": {"row": "cosine similarity of L2-normalised embeddings, in [-1, 1]", "aggregate": "mean(cosine)"},
    "torchmetrics": {
        "row": "100 * cosine, in [-100, 100]",
        "aggregate": "max(100 * mean(cosine), 0), as torchmetrics CLIPScore reports it",
    },
    "clip-s": {
        "row": "2.5 * max(cosine, 0), in [0, 2.5] (CLIP-S, Hessel et al. 2021)",
        "aggregate": "mean(2.5 * max(cosine, 0))",
    },
    "angle": {
        "row": "degrees(arccos(clip(cosine, -1, 1))), in [0, 180]; lower is better",
        "aggregate": "mean(angle), which is not the angle of the mean cosine",
    },
}


def check_scale(scale: str) -> str:
    """Return *scale* if known, else raise :class:`~clipgauge.errors.UsageError` naming the choices."""
    if scale not in SCALES:
        raise UsageError(f"unknown scale '{scale}' (choose from {', '.join(SCALES)})")
    return scale


def higher_is_better(scale: str) -> bool:
    """Whether a higher score is better in *scale* (False only for ``angle``); UsageError for an unknown scale."""
    return HIGHER_IS_BETTER[check_scale(scale)]


def to_scale(cosine: np.ndarray | float, scale: str) -> np.ndarray:
    """Per-row scores in *scale* from raw cosines (NaN stays NaN)."""
    c = np.asarray(cosine, dtype=np.float64)
    check_scale(scale)
    if scale == "cosine":
        return c
    if scale == "torchmetrics":
        return 100.0 * c
    if scale == "angle":
        return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))  # NaN stays NaN
    return 2.5 * np.where(np.isnan(c), np.nan, np.maximum(c, 0.0))


def aggregate(cosine: np.ndarray, scale: str) -> float:
    """The headline number of a set of cosines in *scale* (NaNs ignored; NaN if none)."""
    c = np.asarray(cosine, dtype=np.float64)
    c = c[~np.isnan(c)]
    if c.size == 0:
        return float("nan")
    if scale == "torchmetrics":
        return float(max(100.0 * c.mean(), 0.0))
    return float(to_scale(c, scale).mean())

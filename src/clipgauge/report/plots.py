"""The report's charts, drawn with matplotlib (Agg, no display) and returned as PNG ``data:`` URIs.

Every function takes plain numbers and names; values are in the report's score scale (cosine in [-1, 1],
torchmetrics ×100, or CLIP-S in [0, 2.5]). User text (run names, categories) is drawn literally: math
text parsing is off, so a ``$`` in a category name is just a dollar sign.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Colours of runs 1, 2, … (matplotlib's tab10, colour-blind friendlier than the old default).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_RC = {"text.parse_math": False, "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
       "axes.spines.right": False, "svg.fonttype": "none"}
DPI = 100


def colour(i: int) -> str:
    """The colour of run *i* (0-based), cycling through :data:`PALETTE`."""
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    """One run's points: mean and confidence-interval bounds per x value (NaN where there is no value)."""

    name: str
    means: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]
    counts: Sequence[int] = ()


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def shared_bins(values: Sequence[np.ndarray], max_bins: int = 40) -> np.ndarray:
    """Histogram bin edges common to all runs (numpy's ``auto`` rule on the pooled values, ≤ *max_bins*)."""
    pooled = np.concatenate([np.asarray(v, dtype=np.float64) for v in values]) if values else np.zeros(0)
    pooled = pooled[~np.isnan(pooled)]
    if pooled.size == 0:
        return np.linspace(0.0, 1.0, 11)
    lo, hi = float(pooled.min()), float(pooled.max())
    if lo == hi:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0) * 0.01, hi + 0.5 * (abs(hi) or 1.0) * 0.01
    edges = np.histogram_bin_edges(pooled, bins="auto", range=(lo, hi))
    if edges.size - 1 > max_bins:
        edges = np.linspace(lo, hi, max_bins + 1)
    return edges


def histogram(values: np.ndarray, bins: np.ndarray, *, name: str, xlabel: str, index: int = 0,
              size: tuple[float, float] = (4.6, 2.6)) -> str:
    """Histogram of one run's scores over *bins* (NaNs ignored), its mean as a dashed line."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        ax.hist(x, bins=bins, color=colour(index), alpha=0.85, edgecolor="white", linewidth=0.4)
        if x.size:
            ax.axvline(float(x.mean()), color="#222222", linestyle="--", linewidth=1)
            ax.set_title(f"{name}  (n = {x.size}, mean = {x.mean():.4g})", loc="left")
        else:
            ax.set_title(f"{name}  (no scored rows)", loc="left")
        ax.set_xlim(float(bins[0]), float(bins[-1]))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images")
        return _png(fig)


def category_bars(categories: Sequence[str], series: Sequence[Series], *, ylabel: str) -> str:
    """Grouped bars: mean score per category for each run, with CI error bars."""
    n_cat, n_run = len(categories), max(1, len(series))
    width = 0.8 / n_run
    with matplotlib.rc_context(_RC):
        horizontal = n_cat > 8
        size = (7.5, max(2.6, 0.28 * n_cat * max(1, n_run * 0.6) + 1.0)) if horizontal else (
            max(4.6, 0.9 * n_cat * max(1, n_run * 0.5) + 1.5), 3.2)
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        pos = np.arange(n_cat, dtype=np.float64)
        for i, s in enumerate(series):
            m = np.asarray(s.means, dtype=np.float64)
            err = _errors(m, s.lows, s.highs)
            offs = pos + (i - (n_run - 1) / 2) * width
            if horizontal:
                ax.barh(offs, m, height=width, xerr=err, color=colour(i), label=s.name, capsize=2,
                        error_kw={"linewidth": 0.8})
            else:
                ax.bar(offs, m, width=width, yerr=err, color=colour(i), label=s.name, capsize=2,
                       error_kw={"linewidth": 0.8})
        if horizontal:
            ax.set_yticks(pos, [_short(c) for c in categories])
            ax.invert_yaxis()
            ax.set_xlabel(ylabel)
        else:
            ax.set_xticks(pos, [_short(c) for c in categories], rotation=30 if n_cat > 4 else 0,
                          ha="right" if n_cat > 4 else "center")
            ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8)
        return _png(fig)


def sweep_curves(param: str, xs: Sequence[float | str], series: Sequence[Series], *, ylabel: str,
                 numeric: bool) -> str:
    """Mean score against a parameter's values, one line per run with a shaded CI band.

    *xs* are numbers when *numeric* (plotted at their values), otherwise labels plotted evenly, in order.
    """
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.0, 3.2), layout="constrained")
        ax = fig.add_subplot()
        x = np.asarray(xs, dtype=np.float64) if numeric else np.arange(len(xs), dtype=np.float64)
        for i, s in enumerate(series):
            m = np.asarray(s.means, dtype=np.float64)
            lo = np.asarray(s.lows, dtype=np.float64)
            hi = np.asarray(s.highs, dtype=np.float64)
            ok = ~np.isnan(m)
            ax.plot(x[ok], m[ok], marker="o", markersize=3.5, color=colour(i), label=s.name)
            band = ok & ~np.isnan(lo) & ~np.isnan(hi)
            if band.any():
                ax.fill_between(x[band], lo[band], hi[band], color=colour(i), alpha=0.18, linewidth=0)
        if not numeric:
            ax.set_xticks(x, [_short(str(v)) for v in xs], rotation=30 if len(xs) > 5 else 0,
                          ha="right" if len(xs) > 5 else "center")
        ax.set_xlabel(param)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8)
        return _png(fig)


def _errors(means: np.ndarray, lows: Sequence[float], highs: Sequence[float]) -> np.ndarray:
    """Asymmetric error-bar lengths (2, n) from CI bounds; 0 where a bound is missing."""
    lo = np.asarray(lows, dtype=np.float64)
    hi = np.asarray(highs, dtype=np.float64)
    err = np.vstack([means - lo, hi - means])
    return np.nan_to_num(np.clip(err, 0.0, None), nan=0.0)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

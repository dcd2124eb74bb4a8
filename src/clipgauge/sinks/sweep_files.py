"""Files of a sweep: the table as CSV and a PNG plot (matplotlib's Agg renderer — no display needed).

Both are written atomically; a fault while writing raises :class:`~clipgauge.errors.OutputError` (file and cause).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..atomic import AtomicFile
from ..stats.sweep import Sweep, display_value

CSV_COLUMNS = ("value", "rows", "n", "mean", "std", "ci_low", "ci_high", "ci_method", "is_peak", "within_peak_ci")


def write_sweep_csv(sweep: Sweep, path: str | Path) -> Path:
    """The sweep table, one row per parameter value (the first column is named after the parameter)."""
    path = Path(path)
    with AtomicFile(path) as target, open(target.tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([sweep.param, *CSV_COLUMNS[1:]])
        for row in sweep.table():
            writer.writerow(["" if isinstance(row[c], float) and math.isnan(row[c]) else row[c] for c in CSV_COLUMNS])
    return path


def plot_sweep(sweep: Sweep, path: str | Path, *, title: str | None = None) -> Path:
    """Mean score per value with its CI as a band, the peak and the smallest value within the peak's CI marked.

    Raises ``ImportError`` when matplotlib is not installed (``pip install 'clipgauge[report]'``).
    """
    # A bare Figure renders PNGs with the Agg canvas whatever backend pyplot uses: no display needed, and a
    # user's interactive backend is left alone.
    from matplotlib.figure import Figure

    path = Path(path)
    x = [r.value for r in sweep.rows]
    mean = [r.mean for r in sweep.rows]
    low = [r.ci_low if not math.isnan(r.ci_low) else r.mean for r in sweep.rows]
    high = [r.ci_high if not math.isnan(r.ci_high) else r.mean for r in sweep.rows]
    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    ax = fig.subplots()
    conf = round(100 * sweep.confidence)
    ax.fill_between(x, low, high, alpha=0.25, color="C0", linewidth=0, label=f"{conf}% CI of the mean")
    ax.plot(x, mean, "o-", color="C0", label="mean score")
    if sweep.rows:
        ax.axhspan(sweep.peak_ci_low, sweep.peak_ci_high, color="C1", alpha=0.08, label="peak's CI")
        ax.axvline(sweep.peak_value, color="C1", linestyle="--",
                   label=f"peak at {sweep.param} = {display_value(sweep.peak_value)}")
        if sweep.plateau_value != sweep.peak_value:
            ax.axvline(sweep.plateau_value, color="C2", linestyle=":",
                       label=f"smallest within peak CI: {display_value(sweep.plateau_value)}")
    unit = sweep.column or sweep.scale
    ax.set_xlabel(sweep.param)
    ax.set_ylabel(f"mean score ({unit})")
    per = f", per {','.join(sweep.group_by)}" if sweep.group_by else ""
    ax.set_title(title or f"score vs {sweep.param}{per}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with AtomicFile(path) as target:
        fig.savefig(target.tmp, format="png")
    return path

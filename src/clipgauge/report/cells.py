"""Table cells and score formatting shared by the report's sections."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cell:
    """A table cell: *text* to show and an optional *sort* value (a number as text) for the sorting script."""

    text: str
    sort: str | None = None


def sort_value(x: Any) -> str:
    """A number as text for ``data-sort``; empty for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x))


class Formatter:
    """Score formatting for the report's scale: 2 decimals for torchmetrics (×100), 4 otherwise."""

    def __init__(self, scale: str) -> None:
        self.digits = 2 if scale == "torchmetrics" else 4

    def __call__(self, x: Any, signed: bool = False) -> str:
        if x is None or (isinstance(x, float) and (math.isnan(x))):
            return "–"
        if isinstance(x, float) and math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:+.{self.digits}f}" if signed else f"{x:.{self.digits}f}"

    def ci(self, low: float, high: float, signed: bool = False) -> str:
        return f"[{self(low, signed)}, {self(high, signed)}]"

    def mean_ci(self, mean: float, low: float, high: float, n: int) -> Cell:
        if not n:
            return Cell("–", "")
        return Cell(f"{self(mean)} {self.ci(low, high)} (n={n})", sort_value(mean))

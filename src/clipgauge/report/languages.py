"""The report's per-language section: rows and mean score per prompt language, per run.

Shown when the results have a ``language`` column (the ``language`` metric, on in every ``clipgauge score``
run) with more than one language. With two or more runs matched on a key, each language also gets the paired
difference of every pair of runs (Holm-adjusted p), so a model's advantage that holds in English but not in
Turkish is visible. Rows without a language (empty, emoji-only or too-short prompts) are the ``(none)`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# a sibling module by its full name, so this module does not import its package's __init__ back
import clipgauge.report.sections as sections

from ..errors import UsageError
from ..stats.compare import Comparison, compare_runs
from ..stats.records import key_value
from .inputs import ReportRun

LANGUAGE = "language"


def language_section(runs: Sequence[ReportRun], scale: str, comp: Comparison | None, confidence: float,
                     category_column: str) -> dict[str, Any] | None:
    """The per-language table and chart (the same layout as the per-category section), or None when no run has
    more than one language or the category section already shows languages (``--category language``).

    ``counts``: rows per language over all runs, most frequent first; ``warnings``: the English-only warnings
    of the runs' summaries (how many prompts were not English)."""
    if category_column == LANGUAGE or not any(LANGUAGE in r.columns for r in runs):
        return None
    counts: dict[str, int] = {}
    for r in runs:
        for rec in r.records:
            value = key_value(rec.get(LANGUAGE)) or "(none)"
            counts[value] = counts.get(value, 0) + 1
    if len([v for v in counts if v != "(none)"]) < 2:
        return None
    by_language = None
    if comp is not None:
        try:
            by_language = compare_runs({r.name: r.records for r in runs}, key=comp.key, scale=scale,
                                       by=(LANGUAGE,), confidence=confidence)
        except UsageError:  # the runs were compared on a key that no longer pairs them: means only
            by_language = None
    section = sections.categories(runs, scale, LANGUAGE, confidence, by_language)
    if section is None:
        return None
    section["counts"] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    section["warnings"] = [f"{r.name}: {w}" for r in runs
                           if (w := ((r.summary or {}).get("language") or {}).get("warning"))]
    return section

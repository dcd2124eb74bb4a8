"""Installed plugins: the entry points of a group, each loaded and used once; a broken one is one warning.

Both plugin kinds go through :func:`load_plugins`: metrics (group ``clipgauge.metrics``, each a ``Metric``
subclass) and model families (group ``clipgauge.models``, each a function that registers loaders). A plugin that
fails to import, or whose use fails, gives the same one-line :class:`~clipgauge.errors.PluginWarning` naming its
entry point, and is skipped: the others and clipgauge keep working.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any

from .errors import PluginWarning

__all__ = ["load_plugins", "plugin_failure"]


def plugin_failure(group: str, name: str, value: str, exc: BaseException) -> str:
    """The one line that says entry point *name* (``= value``) of *group* failed with *exc*, and was skipped."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return f"entry point '{name}' ({value}) of group {group} skipped: {reason}"


def load_plugins(group: str, use: Callable[[str, Any], None]) -> list[str]:
    """Load every entry point of *group* and call ``use(name, loaded object)`` for each.

    A point that fails to load, or whose *use* raises, is skipped with a :class:`PluginWarning` of one line
    (:func:`plugin_failure`); unreadable package metadata likewise. Returns those lines (empty when all loaded).
    """
    failures: list[str] = []
    try:
        points = list(importlib.metadata.entry_points(group=group))
    except Exception as exc:  # noqa: BLE001 - broken package metadata must not stop clipgauge
        failures.append(f"entry points of group {group} unreadable: {' '.join(str(exc).split())[:300]}")
        points = []
    for point in points:
        try:
            use(point.name, point.load())
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            failures.append(plugin_failure(group, point.name, point.value, exc))
    for line in failures:
        warnings.warn(line, PluginWarning, stacklevel=2)
    return failures

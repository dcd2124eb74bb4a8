"""Which metrics exist: the built-ins, those registered by code, and those of installed plugins.

Register a metric class from your own code with :func:`register_metric`, or from an installed package through
the entry-point group ``clipgauge.metrics`` (each entry point names a :class:`~clipgauge.metrics.base.Metric`
subclass; it is loaded the first time a metric is looked up or listed; one that fails is skipped with a one-line
:class:`~clipgauge.errors.PluginWarning` naming it)::

    # pyproject.toml of your package
    [project.entry-points."clipgauge.metrics"]
    sharpness = "my_package.sharpness:Sharpness"

A registered metric works with both engines, every output format, the summary and the report.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..plugins import load_plugins
from .base import Metric

ENTRY_POINT_GROUP = "clipgauge.metrics"

#: built-in metrics: name → "module:Class" (relative to this package; imported on first use)
_BUILTIN = {
    "clip": "clip:ClipScore",
    "clip_i": "clip_i:ClipI",
    "refclip_s": "refclip_s:RefClipS",
    "pickscore": "pickscore:PickScore",
    "hpsv2": "hpsv2:HPSv2",
    "hpsv21": "hpsv2:HPSv21",
    "clip_iqa": "clip_iqa:ClipIQA",
    "clip_chunks": "clip_chunks:ClipChunks",
    "aesthetic": "aesthetic:Aesthetic",
    "demo-aesthetic": "aesthetic:DemoAesthetic",
    "language": "language:Language",
    "zeroshot": "zeroshot:ZeroShot",
    "diversity": "diversity:Diversity",
}
_registered: dict[str, type[Metric]] = {}
_plugins_loaded = False
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def register_metric(cls: type[Metric], *, replace: bool = False) -> type[Metric]:
    """Make *cls* available as ``--metric cls.name``. Usable as a class decorator. Returns *cls*."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise TypeError("register_metric takes a subclass of clipgauge.metrics.Metric")
    if not _NAME.match(cls.name or ""):
        raise ValueError(f"metric name {cls.name!r}: use lower-case letters, digits, '_' and '-'")
    if not replace and (cls.name in _BUILTIN or _registered.get(cls.name, cls) is not cls):
        raise ValueError(f"a metric named '{cls.name}' is already registered (pass replace=True to replace it)")
    _registered[cls.name] = cls
    return cls


def unregister_metric(name: str) -> None:
    """Remove a metric registered with :func:`register_metric` (built-ins stay)."""
    _registered.pop(name, None)


def _load_plugins() -> None:
    """Register the ``clipgauge.metrics`` entry points once; a broken one is skipped with a one-line warning
    naming it (:func:`clipgauge.plugins.load_plugins`, as for a broken model plugin)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True

    def use(name: str, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Metric)):
            raise TypeError(f"{cls!r} is not a subclass of clipgauge.metrics.Metric")
        if cls.name not in _registered:
            register_metric(cls)

    load_plugins(ENTRY_POINT_GROUP, use)


def metric_class(name: str) -> type[Metric]:
    """The class of metric *name*; :class:`UsageError` naming the available ones when unknown."""
    if name in _registered:
        return _registered[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(f".{module}", __package__), attr)
    _load_plugins()
    if name in _registered:
        return _registered[name]
    raise UsageError(f"unknown metric '{name}' (available: {', '.join(available_metrics())})")


def available_metrics() -> list[str]:
    """Names of every metric: built-ins, registered ones and installed plugins."""
    _load_plugins()
    return sorted(set(_BUILTIN) | set(_registered))


@dataclass(frozen=True)
class MetricSpec:
    """A metric name and its options, as the user wrote them (``clip:model=hf:/m,scale=clip-s``)."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    def build(self) -> Metric:
        return metric_class(self.name)(**dict(self.options))

    def __str__(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}:{opts}" if opts else self.name


def parse_metric(text: str) -> MetricSpec:
    """Parse ``NAME[:KEY=VALUE,...]``. A value may hold ``:`` and ``,`` (``model=hf:/a,b``): a comma starts a
    new option only when the text after it reads ``KEY=``."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"empty metric name in '{text}' (use NAME[:KEY=VALUE,...])")
    options: list[list[str]] = []
    if rest:
        for piece in rest.split(","):
            key, eq, value = piece.partition("=")
            if eq and re.match(r"^\s*[a-z][a-z0-9_]*\s*$", key):
                options.append([key.strip(), value])
            elif options:
                options[-1][1] += "," + piece
            else:
                raise UsageError(f"metric option '{piece}' in '{text}' is not KEY=VALUE")
    keys = [k for k, _ in options]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise UsageError(f"metric '{name}': option {', '.join(dupes)} given twice")
    return MetricSpec(name, tuple((k, v) for k, v in options))


def describe_metrics() -> list[dict[str, Any]]:
    """Every metric with its summary, needs, options and columns (with default options), for listings."""
    out = []
    for name in available_metrics():
        cls = metric_class(name)
        try:
            inst = cls()
            needs = [n.kind + (f" of {n.model}" if n.model else "") for n in inst.needs()]
            columns = [c.name for c in inst.columns()]
        except UsageError:  # needs an option to be built (e.g. a column name): describe it from the class
            needs, columns = list(getattr(cls, "needs_text", [])), list(getattr(cls, "columns_text", []))
        out.append({"name": name, "summary": cls.summary, "needs": needs, "options": dict(cls.options),
                    "columns": columns})
    return out

"""Model loaders, registered by family: the one place that turns a spec string into a :class:`ModelSpec` and
a :class:`ModelSpec` into an encoder.

Add a model family from outside the package in one of two ways:

* call :func:`register_model_loader` (``clipgauge.encoders.register_model_loader``) before resolving a spec;
* or declare an entry point in the group ``clipgauge.models`` whose object is a **function taking no
  arguments that calls** :func:`register_model_loader` (it may register several families)::

      # pyproject.toml of your package
      [project.entry-points."clipgauge.models"]
      mine = "mypackage.clipgauge_models:register"

  Entry points are loaded lazily, once, the first time a spec matches no registered prefix, or when the
  loaders are listed. One that fails to load is skipped; the reason is named if a spec then matches nothing.

A loader is ``loader(spec: ModelSpec, **options) -> Encoder``. Options are passed only when set: today only
``trust_remote_code=True``; a loader that accepts ``**options`` stays compatible with future ones.

Nothing here imports torch: parsing a spec and listing loaders are cheap.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ClipgaugeError, ModelLoadError
from .builtin import BUILTIN_LOADERS, UNKNOWN_MODEL_HINT, parse_bare
from .spec import ModelSpec

__all__ = ["ENTRY_POINT_GROUP", "ModelLoader", "early_crop_plan", "list_model_loaders", "loader_for",
           "parse_model_spec", "register_model_loader", "resolve_encoder"]

ENTRY_POINT_GROUP = "clipgauge.models"


@dataclass(frozen=True)
class ModelLoader:
    """One registered model family."""

    family: str
    load: Callable[..., Any]
    #: ``NAME:`` selects specs ``NAME:REST``; a word without a colon selects the spec that is exactly it
    prefix: str | None
    describe: str = ""
    #: ``parse(rest, text) -> ModelSpec`` for specs with this prefix (default: ``source=rest``)
    parse: Callable[[str, str], ModelSpec] | None = None
    #: ``early_plan(spec) -> crop plan or None``: the preprocessing, known without loading the model
    early_plan: Callable[[ModelSpec], Any] | None = None

    def parse_text(self, text: str) -> ModelSpec:
        rest = text[len(self.prefix):] if self.prefix and self.prefix.endswith(":") else ""
        if self.parse is not None:
            return self.parse(rest, text)
        if self.prefix and self.prefix.endswith(":") and not rest:
            raise ModelLoadError(f"'{text}' names no model after '{self.prefix}'")
        return ModelSpec(self.family, text, source=rest or None)

    def matches(self, text: str) -> bool:
        if not self.prefix:
            return False
        return text.startswith(self.prefix) if self.prefix.endswith(":") else text == self.prefix


_LOADERS: dict[str, ModelLoader] = {}
_PLUGINS: dict[str, Any] = {"loaded": False, "errors": []}


def register_model_loader(
    family: str,
    loader: Callable[..., Any],
    *,
    prefix: str | None = None,
    describe: str = "",
    parse: Callable[[str, str], ModelSpec] | None = None,
    early_plan: Callable[[ModelSpec], Any] | None = None,
) -> None:
    """Register (or replace) the loader of a model *family*.

    *prefix* is what selects it in a spec: ``"NAME:"`` for specs ``NAME:REST`` (then ``ModelSpec.source`` is
    ``REST``, unless *parse* builds the spec), or a single word without a colon for a spec that is exactly
    that word. Without a prefix the family is reachable only by a *parse* of another family or a
    :class:`ModelSpec` built in code. *describe* is one line for ``clipgauge metrics``. *early_plan*, optional,
    returns the model's crop plan (see ``clipgauge.encoders.crop_plan``) without loading it, so images can be
    decoded while it loads; it is only a guess, checked against the loaded model's plan.
    """
    if not family or not isinstance(family, str):
        raise ValueError("a model loader needs a family name")
    if not callable(loader):
        raise TypeError(f"the loader of '{family}' is not callable")
    if prefix is not None:
        if not prefix or prefix != prefix.strip() or ":" in prefix[:-1]:
            raise ValueError(f"bad prefix {prefix!r} for '{family}': use 'NAME:' or a single word")
        for other in _LOADERS.values():
            if other.prefix == prefix and other.family != family:
                raise ValueError(f"prefix {prefix!r} is already used by the '{other.family}' model loader")
    _LOADERS[family] = ModelLoader(family, loader, prefix, describe, parse, early_plan)


def list_model_loaders() -> list[tuple[str, str | None, str]]:
    """``(family, prefix, description)`` of every registered loader, entry points included."""
    _load_entry_points()
    return [(m.family, m.prefix, m.describe) for m in _LOADERS.values()]


def loader_for(family: str) -> ModelLoader:
    """The registered loader of *family* (entry points included); :class:`ModelLoadError` when there is none."""
    if family not in _LOADERS:
        _load_entry_points()
    try:
        return _LOADERS[family]
    except KeyError:
        raise ModelLoadError(f"no model loader is registered for '{family}'") from None


def parse_model_spec(text: str) -> ModelSpec:
    """Parse a model spec once. Raises :class:`ModelLoadError` with one line for a malformed or unknown spec."""
    text = text.strip()
    if not text:
        raise ModelLoadError("empty model spec")
    spec = _match_prefix(text)
    if spec is None:
        spec = parse_bare(text)
    if spec is None and _load_entry_points():
        spec = _match_prefix(text)
    if spec is None:
        extra = [m.prefix for m in _LOADERS.values() if m.prefix and m.family not in _BUILTIN_FAMILIES]
        hint = UNKNOWN_MODEL_HINT + (f"; also registered: {', '.join(extra)}" if extra else "")
        broken = "; ".join(_PLUGINS["errors"])
        raise ModelLoadError(f"unknown model '{text}': {hint}" + (f" (not loaded: {broken})" if broken else ""))
    return spec


def resolve_encoder(spec: str | ModelSpec, *, trust_remote_code: bool = False):
    """Turn a model spec into a loaded encoder (on CPU). Raises :class:`ModelLoadError` with one line."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    entry = loader_for(parsed.family)
    options = {"trust_remote_code": True} if trust_remote_code else {}
    if entry.load in _BUILTIN_LOAD:  # clipgauge's own loaders raise clipgauge errors already
        return entry.load(parsed, **options)
    try:
        return entry.load(parsed, **options)
    except ClipgaugeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a registered loader's failure becomes one clear line
        text = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"cannot load model '{parsed.text}' ({parsed.family} loader): "
                             f"{type(exc).__name__}: {text}") from exc


def early_crop_plan(spec: str | ModelSpec):
    """The image preprocessing a model spec will use, when it can be known without loading the model (from its
    config files: transformers' ``preprocessor_config.json``, OpenCLIP's model config), else None.

    Provisional: the scorer compares it with the loaded model's own plan before using anything made with it.
    Never raises.
    """
    try:
        parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
        entry = _LOADERS.get(parsed.family)
        return entry.early_plan(parsed) if entry is not None and entry.early_plan is not None else None
    except Exception:  # noqa: BLE001 - a guess only; the real load reports problems
        return None


# ----------------------------------------------------------------------------------------------- internals
def _match_prefix(text: str) -> ModelSpec | None:
    # the longest matching prefix wins, so a registered "open_clip_x:" is not taken for "open_clip:"
    matching = [m for m in _LOADERS.values() if m.matches(text)]
    if not matching:
        return None
    return max(matching, key=lambda m: len(m.prefix or "")).parse_text(text)


def _load_entry_points() -> bool:
    """Load the ``clipgauge.models`` entry points once; True when this call loaded any."""
    if _PLUGINS["loaded"]:
        return False
    _PLUGINS["loaded"] = True
    try:
        points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # noqa: BLE001 - broken package metadata must not stop clipgauge
        _PLUGINS["errors"].append(f"entry points unreadable: {exc}")
        return False
    for point in points:
        try:
            register = point.load()
            register()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            _PLUGINS["errors"].append(f"entry point '{point.name}' ({point.value}): {type(exc).__name__}: {exc}")
    return bool(points)


for _family, _kwargs in BUILTIN_LOADERS:
    register_model_loader(_family, **_kwargs)
_BUILTIN_FAMILIES = frozenset(family for family, _ in BUILTIN_LOADERS)
_BUILTIN_LOAD = tuple(kwargs["loader"] for _, kwargs in BUILTIN_LOADERS)

"""Model loaders, registered by family: the one place that turns a spec string into a :class:`ModelSpec` and
a :class:`ModelSpec` into an encoder.

:func:`parse_model_spec` reads ``--model``; :func:`parse_model_option` reads, with the same grammar, every metric
option that names a model, a processor or a weight file (declared in ``Metric.model_options``), refusing in one
line naming the option the forms that option cannot take.

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
from pathlib import Path
from typing import Any

from ..errors import ClipgaugeError, ModelLoadError
from .builtin import BUILTIN_LOADERS, UNKNOWN_MODEL_HINT, parse_bare
from .spec import HUB_ID, ModelSpec

__all__ = ["ANY_MODEL", "ENTRY_POINT_GROUP", "TRANSFORMERS", "WEIGHT_FILE", "ModelLoader", "early_crop_plan",
           "list_model_loaders", "loader_for", "parse_model_option", "parse_model_spec", "register_model_loader",
           "resolve_encoder"]

ENTRY_POINT_GROUP = "clipgauge.models"

#: what an option naming a model may take (``takes`` of :func:`parse_model_option`): any model spec ``--model`` takes
ANY_MODEL: tuple[str, ...] | None = None
#: a transformers folder or hub id (a CLIPModel, or a tokenizer and image processor): hub id, ``hf:``, folder, demo
TRANSFORMERS = ("transformers", "demo")
#: a weight file: a local file or a hub file ``ORG/NAME/FILE``, either optionally after ``hf:``
WEIGHT_FILE = ("file",)


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
    spec = _parse_known(text)
    if spec is None:
        extra = [m.prefix for m in _LOADERS.values() if m.prefix and m.family not in _BUILTIN_FAMILIES]
        hint = UNKNOWN_MODEL_HINT + (f"; also registered: {', '.join(extra)}" if extra else "")
        broken = "; ".join(_PLUGINS["errors"])
        raise ModelLoadError(f"unknown model '{text}': {hint}" + (f" (not loaded: {broken})" if broken else ""))
    return spec


def parse_model_option(text: str, option: str, takes: tuple[str, ...] | None = ANY_MODEL) -> ModelSpec:
    """Parse the value of an option that names a model, a processor or a weight file (``pickscore:processor=``,
    ``aesthetic:model=``, ``hpsv2:checkpoint=``…) with the grammar of ``--model`` (:func:`parse_model_spec`).

    *option* names it in messages, as ``METRIC:KEY`` (``pickscore:processor``). *takes* is what it accepts: the
    model families (``ANY_MODEL``: every one; ``TRANSFORMERS``: hub id, ``hf:ID_OR_DIR``, folder, ``demo``), and
    ``"file"`` for a weight file (:data:`WEIGHT_FILE`: a local file or a hub file ``ORG/NAME/FILE``, optionally after
    ``hf:``; parsed to family ``file`` with ``source`` the path or hub file). Nothing is loaded; a value it cannot
    take is a :class:`ModelLoadError` of one line naming the option, the value and the forms the option takes.
    """
    text = str(text).strip()
    key = option.rpartition(":")[2]
    label = f"{option}={text}"
    files = takes is not None and "file" in takes
    try:
        spec = _weight_file(text) if files else None
        if spec is None:
            if not text:
                raise ModelLoadError("empty model spec")
            spec = _parse_known(text)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{label}: {exc}; {key}= takes {_forms(takes)}") from None
    if spec is None:
        what = "no such file, and not a hub file ORG/NAME/FILE" if files else (
            "no such file or folder, and not a hub id ORG/NAME")
        raise ModelLoadError(f"{label}: {what}; {key}= takes {_forms(takes)}")
    if takes is not None and spec.family not in takes:
        what = f"names {_FAMILY_WORDS.get(spec.family, f'a {spec.family} model')}"
        if files and spec.family == "transformers" and not Path(spec.source or "").expanduser().exists():
            what = "no such file, and ORG/NAME names a hub repo, not a file in it (ORG/NAME/FILE)"
        raise ModelLoadError(f"{label}: {what}; {key}= takes {_forms(takes)}")
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
_FORMS = {"transformers": "a hub id ORG/NAME, hf:ID_OR_DIR, a folder", "open_clip": "open_clip:ARCH:PRETRAINED, "
          "open_clip:hf-hub:ORG/NAME", "demo": "demo", "file": "a file or a hub file ORG/NAME/FILE (either may "
          "follow hf:)"}
_FAMILY_WORDS = {"transformers": "a transformers model folder", "open_clip": "an OpenCLIP model",
                 "demo": "the demo model", "file": "a weight file, not a model"}


def _forms(takes: tuple[str, ...] | None) -> str:
    """The forms an option taking *takes* accepts, in words (one line)."""
    if takes is None:
        others = [m.prefix for m in _LOADERS.values() if m.prefix and m.prefix.endswith(":") and m.family not in _FORMS]
        return (f"any model spec: {_FORMS['transformers']}, {_FORMS['open_clip']}, demo, or a registered "
                f"PREFIX:... ({', '.join(others)})")
    parts = [_FORMS.get(family, f"{family}:...") for family in takes]
    return ", ".join(parts[:-1]) + f", or {parts[-1]}" if len(parts) > 1 else parts[0]


def _weight_file(text: str) -> ModelSpec | None:
    """A weight file: an existing local file or a hub file ``ORG/NAME/FILE``, optionally after ``hf:``; None when
    *text* is neither (it may then be a model spec, refused by the caller). A folder is refused here."""
    rest = text[len("hf:"):] if text.startswith("hf:") else text
    local = Path(rest).expanduser()
    if local.is_file():
        return ModelSpec("file", text, source=str(local))
    if local.is_dir():
        raise ModelLoadError("is a folder; give the file itself")
    parts = rest.split("/")
    if len(parts) >= 3 and all(parts) and HUB_ID.match("/".join(parts[:2])):
        return ModelSpec("file", text, source=rest)
    return None


def _parse_known(text: str) -> ModelSpec | None:
    """The spec *text* names (one-line :class:`ModelLoadError` when malformed), None when no family knows it."""
    spec = _match_prefix(text)
    if spec is None:
        spec = parse_bare(text)
    if spec is None and _load_entry_points():
        spec = _match_prefix(text)
    return spec


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

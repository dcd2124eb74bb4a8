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
  loaders are listed. One that fails is skipped with a one-line :class:`~clipgauge.errors.PluginWarning` naming
  it (as a broken metric plugin is, :mod:`clipgauge.plugins`); the reason is named again if a spec then matches
  nothing.

The built-in families (:data:`~.families.BUILTIN_FAMILIES`, a table of :class:`~.family.ModelFamily`) are
registered when this module is first imported, i.e. whenever anything of :mod:`clipgauge.encoders` is.

A loader is ``loader(spec: ModelSpec, **options) -> Encoder``. Options are passed only when set: today only
``trust_remote_code=True``; a loader that accepts ``**options`` stays compatible with future ones.

Nothing here imports torch: parsing a spec and listing loaders are cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipgaugeError, ModelLoadError
from ..plugins import load_plugins
from .builtin import parse_bare
from .families import BUILTIN_FAMILIES
from .family import ModelFamily, check_ref
from .spec import HUB_ID, ModelSpec

__all__ = ["ANY_MODEL", "ENTRY_POINT_GROUP", "TRANSFORMERS", "WEIGHT_FILE", "ModelFamily", "ModelLoader",
           "early_crop_plan", "family_usages", "list_model_families", "list_model_loaders", "loader_for",
           "model_forms", "parse_model_option", "parse_model_spec", "register_model_family", "register_model_loader",
           "resolve_encoder", "unknown_model_hint"]

ENTRY_POINT_GROUP = "clipgauge.models"

#: what an option naming a model may take (``takes`` of :func:`parse_model_option`): any model spec ``--model`` takes
ANY_MODEL: tuple[str, ...] | None = None
#: a transformers folder or hub id (a CLIPModel, or a tokenizer and image processor): hub id, ``hf:``, folder, demo
TRANSFORMERS = ("transformers", "demo")
#: a weight file: a local file or a hub file ``ORG/NAME/FILE``, either optionally after ``hf:``
WEIGHT_FILE = ("file",)


#: one registered model family (the name the registry has always exported)
ModelLoader = ModelFamily

_LOADERS: dict[str, ModelLoader] = {}
_PLUGINS: dict[str, Any] = {"loaded": False, "errors": []}


def register_model_loader(
    family: str,
    loader: Callable[..., Any] | str,
    *,
    prefix: str | None = None,
    describe: str = "",
    parse: Callable[[str, str], ModelSpec] | str | None = None,
    early_plan: Callable[[ModelSpec], Any] | str | None = None,
    usage: str = "",
) -> None:
    """Register (or replace) the loader of a model *family*.

    *prefix* is what selects it in a spec: ``"NAME:"`` for specs ``NAME:REST`` (then ``ModelSpec.source`` is
    ``REST``, unless *parse* builds the spec), or a single word without a colon for a spec that is exactly
    that word. Without a prefix the family is reachable only by a *parse* of another family or a
    :class:`ModelSpec` built in code. *describe* is one line for ``clipgauge metrics``; *usage* the spec's grammar
    in a few words (``mine:ORG/NAME``) for ``--model`` help and the unknown-model error (default ``PREFIX...``).
    *early_plan*, optional, returns the model's crop plan (see ``clipgauge.encoders.crop_plan``) without loading
    it, so images can be decoded while it loads; it is only a guess, checked against the loaded model's plan.
    *loader*, *parse* and *early_plan* may be ``"module:attribute"`` paths, imported when first needed.
    """
    register_model_family(ModelFamily(family, loader, prefix, describe, parse, early_plan, usage))


def register_model_family(entry: ModelFamily) -> None:
    """Register (or replace) a model family given as data (see :func:`register_model_loader` for the rules)."""
    family, prefix = entry.family, entry.prefix
    if not family or not isinstance(family, str):
        raise ValueError("a model loader needs a family name")
    check_ref(entry.load, f"loader of '{family}'")
    for what, ref in (("parse", entry.parse), ("early_plan", entry.early_plan)):
        if ref is not None:
            check_ref(ref, f"{what} of '{family}'")
    if prefix is not None:
        if not prefix or prefix != prefix.strip() or ":" in prefix[:-1]:
            raise ValueError(f"bad prefix {prefix!r} for '{family}': use 'NAME:' or a single word")
        for other in _LOADERS.values():
            if other.prefix == prefix and other.family != family:
                raise ValueError(f"prefix {prefix!r} is already used by the '{other.family}' model loader")
    _LOADERS[family] = entry


def list_model_families() -> list[ModelFamily]:
    """Every registered model family, entry points included: the built-ins first, in their table's order."""
    _load_entry_points()
    return list(_LOADERS.values())


def list_model_loaders() -> list[tuple[str, str | None, str]]:
    """``(family, prefix, description)`` of every registered loader, entry points included."""
    return [(m.family, m.prefix, m.describe) for m in list_model_families()]


def family_usages(*, plugins: bool = True) -> list[str]:
    """The spec grammar of every registered family that a spec can select (``pickscore:MODEL|PROCESSOR``), in
    order; *plugins*: load the ``clipgauge.models`` entry points first."""
    if plugins:
        _load_entry_points()
    return [m.grammar for m in _LOADERS.values() if m.grammar]


def model_forms() -> str:
    """Every family's spec grammar as one phrase (``a Hugging Face id …, demo, …, or hpsv2:ARCH:CHECKPOINT``), entry
    points included: what ``--model`` takes."""
    return _either(family_usages())


def _either(forms: list[str]) -> str:
    return ", ".join(forms[:-1]) + f", or {forms[-1]}" if len(forms) > 1 else "".join(forms)


def unknown_model_hint() -> str:
    """What a model spec may be, from the registry: ``use`` the built-in forms, ``also registered:`` the others."""
    builtin = [m.grammar for m in _LOADERS.values() if m.family in _BUILTIN_NAMES and m.grammar]
    extra = [m.grammar for m in _LOADERS.values() if m.family not in _BUILTIN_NAMES and m.grammar]
    return f"use {_either(builtin)}" + (f"; also registered: {', '.join(extra)}" if extra else "")


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
        broken = "; ".join(_PLUGINS["errors"])
        raise ModelLoadError(f"unknown model '{text}': {unknown_model_hint()}"
                             + (f" (not loaded: {broken})" if broken else ""))
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
    load = entry.loader()
    if entry.own_errors:  # clipgauge's own loaders raise clipgauge errors already
        return load(parsed, **options)
    try:
        return load(parsed, **options)
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
        return entry.plan(parsed) if entry is not None else None
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
        if text == "demo":  # the keyword, whatever folder of that name the working folder holds
            return None
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
    """Load the ``clipgauge.models`` entry points once (each a function that registers families); True when this
    call found any. A broken one is skipped with a one-line warning (:func:`clipgauge.plugins.load_plugins`)."""
    if _PLUGINS["loaded"]:
        return False
    _PLUGINS["loaded"] = True
    found: list[str] = []

    def use(name: str, register: Any) -> None:
        found.append(name)
        register()

    _PLUGINS["errors"].extend(load_plugins(ENTRY_POINT_GROUP, use))
    return bool(found) or bool(_PLUGINS["errors"])


for _entry in BUILTIN_FAMILIES:
    register_model_family(_entry)
_BUILTIN_NAMES = frozenset(entry.family for entry in BUILTIN_FAMILIES)

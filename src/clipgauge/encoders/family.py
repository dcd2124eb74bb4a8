"""A model family as data: its name, spec prefix, grammar, one-line description, and its functions (each a callable
or a lazy ``"module:attribute"`` path, imported the first time it is needed).

The built-in families are a table of these (:mod:`.families`); ``register_model_loader`` builds one for a family
registered from code or a ``clipgauge.models`` entry point. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ModelLoadError
from .spec import ModelSpec

__all__ = ["ModelFamily", "resolve_ref"]

#: a lazy reference to a function: ``package.module:attribute``
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

Ref = Callable[..., Any] | str


def resolve_ref(ref: Ref) -> Callable[..., Any]:
    """The function *ref* names: itself when callable, else the attribute of ``"module:attribute"`` (imported now)."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def check_ref(ref: Any, what: str) -> None:
    """:class:`TypeError` unless *ref* is a callable or a ``"module:attribute"`` path."""
    if not (callable(ref) or (isinstance(ref, str) and _REF.match(ref))):
        raise TypeError(f"the {what} is neither callable nor a 'module:attribute' path: {ref!r}")


@dataclass(frozen=True)
class ModelFamily:
    """One model family: what selects it in a spec, how the spec is parsed, how the model is loaded.

    *load*, *parse* and *early_plan* are callables or ``"module:attribute"`` paths, imported on first use (so a
    table of families costs no import). ``load(spec, **options) -> Encoder``; ``parse(rest, text) -> ModelSpec``
    for specs with this prefix (default: ``source=rest``); ``early_plan(spec) -> crop plan or None``, the
    preprocessing known without loading the model (a guess, checked against the loaded model's plan).
    """

    family: str
    load: Ref
    #: ``NAME:`` selects specs ``NAME:REST``; a word without a colon selects the spec that is exactly it
    prefix: str | None
    #: one line for ``clipgauge metrics``
    describe: str = ""
    parse: Ref | None = None
    early_plan: Ref | None = None
    #: the spec's grammar in a few words (``pickscore:MODEL|PROCESSOR``), for ``--model`` help and the unknown-model
    #: error; default: the prefix followed by ``...``
    usage: str = ""
    #: its loader raises clipgauge's own one-line errors: any other exception is passed on as it is, not wrapped
    own_errors: bool = False

    @property
    def grammar(self) -> str:
        """:attr:`usage`, or what the prefix says (``NAME:...``, or the word itself); empty without a prefix."""
        if self.usage:
            return self.usage
        if not self.prefix:
            return ""
        return f"{self.prefix}..." if self.prefix.endswith(":") else self.prefix

    def parse_text(self, text: str) -> ModelSpec:
        """The :class:`ModelSpec` of *text*, a spec this family's prefix matches (one-line error when malformed)."""
        rest = text[len(self.prefix):] if self.prefix and self.prefix.endswith(":") else ""
        if self.parse is not None:
            return resolve_ref(self.parse)(rest, text)
        if self.prefix and self.prefix.endswith(":") and not rest:
            raise ModelLoadError(f"'{text}' names no model after '{self.prefix}'")
        return ModelSpec(self.family, text, source=rest or None)

    def matches(self, text: str) -> bool:
        if not self.prefix:
            return False
        return text.startswith(self.prefix) if self.prefix.endswith(":") else text == self.prefix

    def loader(self) -> Callable[..., Any]:
        """The load function (imported now when given as a path)."""
        return resolve_ref(self.load)

    def plan(self, spec: ModelSpec) -> Any:
        """The early crop plan of *spec*, or None when the family has no ``early_plan``."""
        return resolve_ref(self.early_plan)(spec) if self.early_plan is not None else None

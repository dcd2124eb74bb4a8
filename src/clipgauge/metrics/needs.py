"""The need seam: each kind of shared input a metric can ask for (:class:`~clipgauge.metrics.base.Need`) is a
registered :class:`NeedKind` that says when in the scoring step it is computed and how, per batch of rows.

* :data:`ROWS` — before the batch's images, from the rows alone (prompt embeddings, text columns, the prompts'
  languages). A kind whose reasons mean the row's image need not be read says so in :meth:`NeedKind.blocks`.
* :data:`IMAGES` — with the images: one value per row's own image, from a stream that runs ahead across batches
  (:mod:`clipgauge.pipeline.stream`). The stream hands each image decoded once (an RGB ``PIL.Image``) to every
  kind of this phase, or, where the only one of the run reads the image sources itself (a model with its own
  decoder: :attr:`NeedKind.decoded` False), the sources.
* :data:`AFTER` — after the batch's images (reference images, which may reuse the first image prefetch).

Whatever the phase, a kind leaves ``batch.values[need]`` (one value per row, or an array of N rows) and
``batch.errors[need]`` (per row a reason, None when it has a value) in the :class:`~clipgauge.metrics.base.MetricBatch`.
The built-in kinds are ``text_embedding``, ``image_embedding``, ``image`` (:mod:`.need_kinds`) and ``language``
(:mod:`.language`). A new kind is one class plus :func:`register_need`::

    @register_need
    class ImageSize(NeedKind):
        name = "image_size"
        phase = IMAGES

        def of_image(self, image):
            return image.size  # (width, height) in pixels

and a metric that declares ``Need("image_size")`` gets ``batch.values[Need("image_size")]``. Nothing here imports
torch; a kind's *context* is the run's :class:`~clipgauge.pipeline.plan.ScoringPlan` (``context.embedder(spec)``,
``context.options`` …).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .base import MetricBatch, Need

#: computed from the rows, before their images are read
ROWS = "rows"
#: computed from each row's own image, decoded once for every kind and model
IMAGES = "images"
#: computed after the batch's images
AFTER = "after"
#: the phases in the order the scoring step runs them
PHASES = (ROWS, IMAGES, AFTER)

#: built-in kinds: name → "module:Class" (relative to this package; imported on first use)
_BUILTIN = {
    "text_embedding": "need_kinds:TextEmbedding",
    "image_embedding": "need_kinds:ImageEmbedding",
    "image": "need_kinds:Image",
    "language": "language:PromptLanguages",
}
_registered: dict[str, NeedKind] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class NeedKind:
    """How one kind of need is computed per batch. Subclasses set :attr:`name` and :attr:`phase` and implement
    :meth:`compute` (phases :data:`ROWS`, :data:`AFTER`) or :meth:`of_image` / :meth:`stream` (:data:`IMAGES`)."""

    #: the kind metrics name in ``Need(kind)``
    name: ClassVar[str] = ""
    #: when it is computed: :data:`ROWS`, :data:`IMAGES` or :data:`AFTER` (per need: :meth:`phase_of`)
    phase: ClassVar[str] = ROWS
    #: :data:`IMAGES` only: whether it reads decoded pixels (False: the image sources, when it is the only one)
    decoded: ClassVar[bool] = True

    def phase_of(self, need: Need) -> str:
        """The phase *need* is computed in (:attr:`phase` unless it depends on the need, e.g. its column)."""
        return self.phase

    def blocks(self, need: Need) -> bool:
        """Whether a row's reason for *need* (a :data:`ROWS` need) means its image is not read (a bad prompt)."""
        return False

    # ----------------------------------------------------------------- ROWS and AFTER
    def compute(self, context: Any, need: Need, batch: MetricBatch) -> None:
        """Set ``batch.values[need]`` and ``batch.errors[need]`` (and ``batch.truncated[need]`` for texts)."""
        raise NotImplementedError(f"need kind '{self.name}' computes nothing per batch")

    # ----------------------------------------------------------------- IMAGES
    def of_image(self, image: Any) -> Any:
        """The value of one decoded RGB ``PIL.Image`` (called in order, on the scoring thread)."""
        raise NotImplementedError(f"need kind '{self.name}' reads no image")

    def stream(self, context: Any, need: Need, images: Iterable[Any]) -> Iterator[tuple[Any, str | None]]:
        """``(value, None)`` or ``(None, reason)`` per item of *images*, in order. Items are decoded images, or
        objects with a ``reason`` (the image could not be read); with :attr:`decoded` False, image sources."""
        for item in images:
            reason = getattr(item, "reason", None)
            yield (None, reason) if reason is not None else (self.of_image(item), None)

    def timed(self, context: Any, need: Need, count: int) -> AbstractContextManager[Any]:
        """A context timing the work on *count* images of one batch (a model's embedding time)."""
        return nullcontext()

    def collect(self, context: Any, need: Need, n: int, at: Sequence[int],
                items: Sequence[tuple[Any, str | None]]) -> Any:
        """``batch.values[need]`` of a batch of *n* rows from the ``(value, reason)`` *items* of :meth:`stream` for
        the rows *at* (the others have no value): by default a list, None where a row has no value."""
        out: list[Any] = [None] * n
        for i, (v, _) in zip(at, items):
            out[i] = v
        return out


def register_need(cls: type[NeedKind], *, replace: bool = False) -> type[NeedKind]:
    """Make need kind *cls* available as ``Need(cls.name)``. Usable as a class decorator. Returns *cls*."""
    if not (isinstance(cls, type) and issubclass(cls, NeedKind)):
        raise TypeError("register_need takes a subclass of clipgauge.metrics.NeedKind")
    if not _NAME.match(cls.name or ""):
        raise ValueError(f"need kind {cls.name!r}: use lower-case letters, digits and '_'")
    if cls.phase not in PHASES:
        raise ValueError(f"need kind {cls.name!r}: phase must be one of {', '.join(PHASES)}")
    known = _registered.get(cls.name)
    if not replace and (cls.name in _BUILTIN or (known is not None and type(known) is not cls)):
        raise ValueError(f"a need kind named '{cls.name}' is already registered (pass replace=True to replace it)")
    _registered[cls.name] = cls()
    return cls


def unregister_need(name: str) -> None:
    """Remove a need kind registered with :func:`register_need` (built-ins stay)."""
    _registered.pop(name, None)


def need_kind(name: str) -> NeedKind:
    """The registered kind *name*; :class:`ValueError` naming the known ones when there is none."""
    kind = _registered.get(name)
    if kind is None and name in _BUILTIN:
        module, _, cls = _BUILTIN[name].partition(":")
        kind = _registered[name] = getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
    if kind is None:
        raise ValueError(f"need kind must be one of {', '.join(need_kinds())} (got {name!r})")
    return kind


def need_kinds() -> list[str]:
    """Every known kind: the built-ins, then those registered, in order."""
    return list(dict.fromkeys([*_BUILTIN, *_registered]))


def registered_needs() -> list[type[NeedKind]]:
    """The classes of the kinds registered from outside clipgauge (sent to Ray actors with the run)."""
    return [type(k) for name, k in _registered.items() if name not in _BUILTIN]

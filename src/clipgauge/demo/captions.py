"""The caption grammar of the demo scenes: colours, shapes, relations, captions and their meaning.

A caption is described by a :class:`PromptSpec` (``kind``, the objects it names, an optional relation and
background, a wording prefix). :func:`parse_caption` reads a caption back; :func:`mismatch_spec` makes a
caption one edit away (what ``clipgauge demo`` draws deliberately wrong images for). Random captions for
training live with the trainer (``tools/demo_sampling.py``). Depends on numpy only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

RGB = tuple[int, int, int]
RngLike = np.random.Generator | int | None

#: Object colours (names used in captions) and their base 8-bit sRGB values.
COLOURS: dict[str, RGB] = {
    "red": (220, 30, 35),
    "green": (30, 160, 55),
    "blue": (35, 75, 225),
    "yellow": (245, 215, 30),
    "purple": (135, 50, 180),
    "orange": (250, 135, 20),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
#: Named background colours: the object colours plus gray.
BACKGROUND_COLOURS: dict[str, RGB] = {**COLOURS, "gray": (128, 128, 128)}
#: Shape names (singular, as used in captions).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
#: Spatial relations, read as "<first object> <relation> <second object>".
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
INVERSE_RELATION: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
#: Caption kinds: one object, two identical objects, two objects, two objects with a relation.
KINDS: tuple[str, ...] = ("one", "two", "and", "rel")
#: Caption prefixes; index 0 is the bare caption (``"a red circle"``).
PREFIXES: tuple[str, ...] = ("", "a photo of ", "a picture of ", "an image of ", "a drawing of ")
#: Edits :func:`mismatch_spec` can make to a caption.
CHANGES: tuple[str, ...] = ("colour", "shape", "background", "relation", "swap", "count")
#: The edits the bundled demo CLIP reliably detects (it cannot tell spatial relations apart: see its
#: model card), for ``render_examples(..., change=DEMO_MODEL_CHANGES)``.
DEMO_MODEL_CHANGES: tuple[str, ...] = ("colour", "shape", "background", "swap", "count")


def _as_rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True, order=True)
class Thing:
    """An object as a caption names it: a colour from :data:`COLOURS` and a shape from :data:`SHAPES`."""

    colour: str
    shape: str

    def phrase(self) -> str:
        """Noun phrase with article, e.g. ``"an orange star"``."""
        return f"{_article(self.colour)} {self.colour} {self.shape}"


@dataclass(frozen=True)
class PromptSpec:
    """Structured caption.

    ``kind`` is one of :data:`KINDS`; ``things`` holds one object (``"one"``, ``"two"``: two copies
    of it) or two different objects (``"and"``, ``"rel"``); ``relation`` (kind ``"rel"`` only) is
    read as ``things[0] <relation> things[1]``; ``background`` optionally names the background
    colour (a key of :data:`BACKGROUND_COLOURS`); ``prefix`` indexes :data:`PREFIXES` and only
    changes the wording, not the meaning.
    """

    kind: str
    things: tuple[Thing, ...]
    relation: str | None = None
    background: str | None = None
    prefix: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown caption kind {self.kind!r}")
        n_things = 1 if self.kind in ("one", "two") else 2
        if len(self.things) != n_things:
            raise ValueError(f"kind {self.kind!r} needs {n_things} object(s), got {len(self.things)}")
        for t in self.things:
            if t.colour not in COLOURS or t.shape not in SHAPES:
                raise ValueError(f"unknown colour or shape in {t}")
        if n_things == 2 and self.things[0] == self.things[1]:
            raise ValueError("two identical objects are written as kind 'two'")
        if (self.kind == "rel") != (self.relation is not None):
            raise ValueError("a relation is given exactly for kind 'rel'")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")
        if self.background is not None and self.background not in BACKGROUND_COLOURS:
            raise ValueError(f"unknown background colour {self.background!r}")
        if not 0 <= self.prefix < len(PREFIXES):
            raise ValueError(f"prefix index out of range: {self.prefix}")

    @property
    def key(self) -> tuple:
        """Meaning of the caption (wording-independent); compare with :func:`scene_keys`."""
        if self.kind == "and":
            body: tuple = ("and", tuple(sorted(self.things)))
        elif self.kind == "rel":
            body = ("rel", self.things[0], self.relation, self.things[1])
        else:
            body = (self.kind, self.things[0])
        return body + (self.background,)

    @property
    def caption(self) -> str:
        """The caption text, e.g. ``"a photo of a red circle to the left of a blue star"``."""
        a = self.things[0]
        if self.kind == "one":
            body = a.phrase()
        elif self.kind == "two":
            body = f"two {a.colour} {a.shape}s"
        elif self.kind == "and":
            body = f"{a.phrase()} and {self.things[1].phrase()}"
        else:
            rel = f"to the {self.relation}" if self.relation in ("left of", "right of") else self.relation
            body = f"{a.phrase()} {rel} {self.things[1].phrase()}"
        if self.background is not None:
            body += f" on {_article(self.background)} {self.background} background"
        return PREFIXES[self.prefix] + body


def _compatible_backgrounds(things: Iterable[Thing]) -> list[str]:
    used = {t.colour for t in things}
    return [name for name in BACKGROUND_COLOURS if name not in used]

_PLURALS = {s + "s": s for s in SHAPES}
_RELATION_WORDS = {
    "to the left of": "left of",
    "left of": "left of",
    "to the right of": "right of",
    "right of": "right of",
    "above": "above",
    "below": "below",
}
_THING_RE = r"an? (\w+) (\w+)"
_LINK_RE = r"(to the left of|to the right of|left of|right of|above|below|and)"
_PAIR_RE = re.compile(rf"^{_THING_RE} {_LINK_RE} {_THING_RE}$")
_TWO_RE = re.compile(r"^two (\w+) (\w+)$")
_ONE_RE = re.compile(rf"^{_THING_RE}$")
_BACKGROUND_RE = re.compile(r"^(.*) on an? (\w+) background$")


def parse_caption(text: str) -> PromptSpec | None:
    """Parse a caption of the demo grammar back into a :class:`PromptSpec`; ``None`` if it is not one.

    Accepts every caption :attr:`PromptSpec.caption` produces, case-insensitively, with an optional
    trailing period and ``grey`` for ``gray``; also ``"left of"`` for ``"to the left of"``.
    Returns ``None`` for unknown words, identical objects joined by "and"/a relation, or a
    background colour that equals an object colour.
    """
    t = " ".join(text.lower().replace("grey", "gray").strip().rstrip(".").split())
    prefix = 0
    for i, p in enumerate(PREFIXES[1:], start=1):
        if t.startswith(p):
            prefix, t = i, t[len(p) :]
            break
    background = None
    m = _BACKGROUND_RE.match(t)
    if m:
        t, background = m.group(1), m.group(2)
        if background not in BACKGROUND_COLOURS:
            return None

    def thing(colour: str, shape: str) -> Thing | None:
        return Thing(colour, shape) if colour in COLOURS and shape in SHAPES else None

    spec: PromptSpec | None = None
    if m2 := _TWO_RE.match(t):
        a = thing(m2.group(1), _PLURALS.get(m2.group(2), ""))
        spec = PromptSpec("two", (a,), background=background, prefix=prefix) if a else None
    elif m2 := _PAIR_RE.match(t):
        a, b = thing(m2.group(1), m2.group(2)), thing(m2.group(4), m2.group(5))
        if a is None or b is None or a == b:
            return None
        word = m2.group(3)
        if word == "and":
            spec = PromptSpec("and", (a, b), background=background, prefix=prefix)
        else:
            spec = PromptSpec("rel", (a, b), _RELATION_WORDS[word], background=background, prefix=prefix)
    elif m2 := _ONE_RE.match(t):
        a = thing(m2.group(1), m2.group(2))
        spec = PromptSpec("one", (a,), background=background, prefix=prefix) if a else None
    if spec is None or (background is not None and background in {x.colour for x in spec.things}):
        return None
    return spec


def mismatch_spec(spec: PromptSpec, rng: RngLike = None, *, change: str | Sequence[str] | None = None) -> PromptSpec:
    """A caption close to *spec* but with a different meaning (one attribute changed).

    ``change`` is one of :data:`CHANGES`: ``"colour"``, ``"shape"``, ``"background"`` (needs a named
    background), ``"relation"`` (kind ``"rel"``: the opposite relation), ``"swap"`` (two objects
    that differ in both colour and shape: exchange their colours), ``"count"`` (one object ↔ two
    copies); a sequence of them to pick randomly among those that apply (``"colour"`` or
    ``"shape"`` if none does); or ``None`` for any applicable one. A single ``change`` that does
    not apply raises ``ValueError``. Scenes drawn for the result never follow *spec* (checked by
    :func:`render_prompt`).
    """
    rng = _as_rng(rng)
    options = ["colour", "shape"]
    if spec.background is not None:
        options.append("background")
    if spec.kind == "rel":
        options.append("relation")
    if spec.kind in ("and", "rel"):
        a, b = spec.things
        if a.colour != b.colour and a.shape != b.shape:
            options.append("swap")
    if spec.kind in ("one", "two"):
        options.append("count")
    if change is None:
        change = str(rng.choice(options))
    elif not isinstance(change, str):
        allowed = [c for c in options if c in change] or ["colour", "shape"]
        change = str(rng.choice(allowed))
    elif change not in options:
        raise ValueError(f"change {change!r} does not apply to {spec.caption!r} (options: {options})")

    things = list(spec.things)
    if change == "relation":
        return replace(spec, relation=INVERSE_RELATION[str(spec.relation)])
    if change == "swap":
        a, b = things
        return replace(spec, things=(Thing(b.colour, a.shape), Thing(a.colour, b.shape)))
    if change == "count":
        return replace(spec, kind="two" if spec.kind == "one" else "one")
    if change == "background":
        choices = [c for c in _compatible_backgrounds(things) if c != spec.background]
        return replace(spec, background=str(rng.choice(choices)))
    for _ in range(1000):
        i = int(rng.integers(len(things)))
        new = list(things)
        if change == "colour":
            new[i] = Thing(str(rng.choice([c for c in COLOURS if c != things[i].colour])), things[i].shape)
        else:
            new[i] = Thing(things[i].colour, str(rng.choice([s for s in SHAPES if s != things[i].shape])))
        if len(new) == 2 and new[0] == new[1]:
            continue
        if spec.background is not None and spec.background in {t.colour for t in new}:
            continue
        return replace(spec, things=tuple(new))
    raise RuntimeError("could not build a mismatched caption")  # pragma: no cover

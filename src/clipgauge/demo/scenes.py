"""Procedural scenes of simple coloured shapes, their captions, and a small caption grammar.

This module is the data source of the bundled demo CLIP (``tools/train_demo_model.py``) and
the image generator of ``clipgauge demo``. It depends on PIL and numpy only.

Conventions used throughout:

* Positions and sizes are fractions of the image side, in ``[0, 1]``; the origin is the
  top-left corner and ``y`` grows downwards (so "above" means a smaller ``y``).
* Colours are 8-bit sRGB triples with channels in ``[0, 255]``; noise levels are standard
  deviations in the same 8-bit units.
* Object tilts are in degrees, counter-clockwise; background gradient directions in degrees with
  0 = left to right and 90 = top to bottom.
* Randomness always comes from an explicit ``numpy.random.Generator`` (or an ``int`` seed),
  so every function here is reproducible.

A caption is described by a :class:`PromptSpec`; a concrete picture by a :class:`Scene`.
:func:`satisfies` decides whether a scene follows a caption, with "exhaustive" semantics:
``"a red circle"`` is followed only by a picture that shows exactly one object, a red circle
(on any background); ``"a red circle on a white background"`` additionally fixes the
background; ``"two yellow stars"`` needs exactly two yellow stars; ``"a red circle and a blue
star"`` exactly those two objects anywhere; ``"a red circle to the left of a blue star"``
also needs the stated spatial relation.

Typical use (what ``clipgauge demo`` needs)::

    examples = render_examples(["a red circle", "two yellow stars"], per_prompt=4, seed=0)
    for ex in examples:
        ex.image.save(...)  # ex.follows tells whether the picture follows ex.prompt

or, one image at a time: ``render_prompt("a red circle", follow=False, rng=1)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

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
#: Factors that :func:`sample_scene` can move out of the training distribution.
OOD_FACTORS: tuple[str, ...] = ("size", "position", "background")

#: Edits :func:`mismatch_spec` can make to a caption.
CHANGES: tuple[str, ...] = ("colour", "shape", "background", "relation", "swap", "count")
#: The edits the bundled demo CLIP reliably detects (it cannot tell spatial relations apart: see its
#: model card), for ``render_examples(..., change=DEMO_MODEL_CHANGES)``.
DEMO_MODEL_CHANGES: tuple[str, ...] = ("colour", "shape", "background", "swap", "count")

#: Default caption-kind probabilities used for training.
DEFAULT_KIND_WEIGHTS: dict[str, float] = {"one": 0.5, "two": 0.15, "and": 0.1, "rel": 0.25}

# Nominal radius ranges (fraction of the image side) in and out of the training distribution.
_RADIUS_ONE = (0.13, 0.28)
_RADIUS_PAIR = (0.10, 0.18)
_RADIUS_ONE_OOD = ((0.075, 0.11), (0.30, 0.34))
_RADIUS_PAIR_OOD = ((0.065, 0.085), (0.195, 0.215))
# Bounding-circle radius of each shape, in units of its nominal radius.
_EXTENT = {"circle": 1.0, "square": 1.25, "triangle": 1.2, "star": 1.25}
_MARGIN = 0.02  # minimum gap to the image border in the training distribution
_GAP = 0.04  # minimum gap between the bounding circles of two objects
_REL_MIN_DIST = 0.15  # minimum centre offset along the relation axis for a relation to hold
_REL_TOLERANCE = 0.5  # max |off-axis offset| / |on-axis offset| for a relation to hold
_REL_TOLERANCE_SAMPLE = 0.35  # stricter tolerance used when drawing a relation on purpose
_COLOUR_JITTER = 18  # uniform per-channel jitter of object colours (8-bit units)
_BACKGROUND_JITTER = 12
_SHADING = 20.0  # named backgrounds may shade by up to this much per channel at either end (8-bit units)
_NOISE_MAX = 6.0  # per-pixel Gaussian noise std is drawn from [0, _NOISE_MAX] (8-bit units)
_MAX_ANGLE = 12.0  # polygons are rotated by a uniform angle in [-_MAX_ANGLE, _MAX_ANGLE] degrees
_OOD_MIN_COLOUR_DISTANCE = 90.0  # unnamed backgrounds keep this RGB distance from object colours


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


@dataclass(frozen=True)
class PlacedShape:
    """A drawn object: centre ``(cx, cy)`` and nominal ``radius`` as fractions of the image side,
    ``angle`` in degrees, ``rgb`` the actual 8-bit fill colour, ``colour`` its palette name."""

    shape: str
    colour: str
    rgb: RGB
    cx: float
    cy: float
    radius: float
    angle: float = 0.0

    @property
    def thing(self) -> Thing:
        """The caption-level description of this object."""
        return Thing(self.colour, self.shape)

    @property
    def extent(self) -> float:
        """Radius of the bounding circle, as a fraction of the image side."""
        return self.radius * _EXTENT[self.shape]


@dataclass(frozen=True)
class Scene:
    """A complete, deterministic picture description.

    ``background`` is the palette name of a solid background or ``None`` for an unnamed one
    (out-of-distribution colours or gradients); ``background_rgb`` holds the two end colours of a
    linear gradient (equal for a uniform background) that runs along ``gradient_angle`` (degrees,
    0: left to right, 90: top to bottom) from one corner of the image to the opposite one;
    ``noise`` is the per-pixel Gaussian noise std (8-bit units) and ``noise_seed`` seeds it.
    """

    shapes: tuple[PlacedShape, ...]
    background: str | None
    background_rgb: tuple[RGB, RGB]
    noise: float = 0.0
    noise_seed: int = 0
    gradient_angle: float = 45.0


# --------------------------------------------------------------------------- geometry & meaning


def relation_between(a: PlacedShape, b: PlacedShape, tolerance: float = _REL_TOLERANCE) -> str | None:
    """Spatial relation of *a* with respect to *b* (``"left of"`` means *a* is left of *b*), or ``None``.

    A relation holds when the centres are at least 0.15 image sides apart along its axis and the
    offset along the other axis is at most ``tolerance`` times that.
    """
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= _REL_MIN_DIST and abs(dy) <= tolerance * abs(dx):
        return "left of" if dx > 0 else "right of"
    if abs(dy) >= _REL_MIN_DIST and abs(dx) <= tolerance * abs(dy):
        return "above" if dy > 0 else "below"
    return None


def scene_keys(scene: Scene) -> frozenset[tuple]:
    """All caption meanings (:attr:`PromptSpec.key`) that *scene* follows."""
    things = [s.thing for s in scene.shapes]
    bodies: list[tuple] = []
    if len(things) == 1:
        bodies.append(("one", things[0]))
    elif len(things) == 2:
        if things[0] == things[1]:
            bodies.append(("two", things[0]))
        else:
            bodies.append(("and", tuple(sorted(things))))
            for p, q in ((0, 1), (1, 0)):
                rel = relation_between(scene.shapes[p], scene.shapes[q])
                if rel is not None:
                    bodies.append(("rel", things[p], rel, things[q]))
    backgrounds = (None, scene.background) if scene.background is not None else (None,)
    return frozenset(body + (bg,) for body in bodies for bg in backgrounds)


def satisfies(scene: Scene, spec: PromptSpec) -> bool:
    """Whether *scene* follows the caption *spec* (exhaustive semantics, see the module docstring)."""
    return spec.key in scene_keys(scene)


def describe(scene: Scene) -> str:
    """A canonical caption of what *scene* actually shows, e.g. ``"a red circle on a white background"``."""
    things = [s.thing for s in scene.shapes]
    if len(things) == 1:
        spec = PromptSpec("one", (things[0],), background=scene.background)
    elif things[0] == things[1]:
        spec = PromptSpec("two", (things[0],), background=scene.background)
    else:
        rel = relation_between(scene.shapes[0], scene.shapes[1])
        kind = "and" if rel is None else "rel"
        spec = PromptSpec(kind, tuple(things), relation=rel, background=scene.background)
    return spec.caption


# --------------------------------------------------------------------------- captions


def single_object_specs(prefix: int = 0) -> list[PromptSpec]:
    """The 32 single-object captions (every colour × shape), colour-major order, no background."""
    return [PromptSpec("one", (Thing(c, s),), prefix=prefix) for c in COLOURS for s in SHAPES]


def _random_thing(rng: np.random.Generator) -> Thing:
    return Thing(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))


def _compatible_backgrounds(things: Iterable[Thing]) -> list[str]:
    used = {t.colour for t in things}
    return [name for name in BACKGROUND_COLOURS if name not in used]


def sample_spec(
    rng: RngLike = None,
    *,
    kind_weights: dict[str, float] | None = None,
    background_prob: float = 0.3,
    prefix_prob: float = 0.5,
) -> PromptSpec:
    """Draw a random caption.

    ``kind_weights`` maps :data:`KINDS` to relative probabilities (default
    :data:`DEFAULT_KIND_WEIGHTS`); ``background_prob`` (0..1) is the chance that the caption names
    the background; ``prefix_prob`` (0..1) the chance of a prefix such as ``"a photo of"``.
    """
    rng = _as_rng(rng)
    weights = kind_weights or DEFAULT_KIND_WEIGHTS
    kinds = list(weights)
    p = np.asarray([weights[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    first = _random_thing(rng)
    things: tuple[Thing, ...] = (first,)
    relation = None
    if kind in ("and", "rel"):
        second = _random_thing(rng)
        while second == first:
            second = _random_thing(rng)
        things = (first, second)
        if kind == "rel":
            relation = str(rng.choice(RELATIONS))
    background = None
    if rng.random() < background_prob:
        background = str(rng.choice(_compatible_backgrounds(things)))
    prefix = int(rng.integers(1, len(PREFIXES))) if rng.random() < prefix_prob else 0
    return PromptSpec(kind, things, relation=relation, background=background, prefix=prefix)


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


# --------------------------------------------------------------------------- scenes


def _to_rgb(values: np.ndarray) -> RGB:
    v = np.clip(np.round(values), 0, 255).astype(int)
    return (int(v[0]), int(v[1]), int(v[2]))


def _jitter(rgb: RGB, amount: int, rng: np.random.Generator) -> RGB:
    values = np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(values[0]), int(values[1]), int(values[2]))


def _sample_radius(rng: np.random.Generator, n: int, ood_size: bool) -> float:
    if ood_size:
        ranges = _RADIUS_ONE_OOD if n == 1 else _RADIUS_PAIR_OOD
        lo, hi = ranges[int(rng.integers(2))]
    else:
        lo, hi = _RADIUS_ONE if n == 1 else _RADIUS_PAIR
    return float(rng.uniform(lo, hi))


def _sample_centre(rng: np.random.Generator, extent: float, ood_position: bool) -> tuple[float, float]:
    lo, hi = extent + _MARGIN, 1.0 - extent - _MARGIN
    if not ood_position:
        return float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))

    # Out of distribution: the object crosses the image border by 15-40% of its bounding radius on
    # at least one axis (never seen in training, where objects are fully inside with a margin).
    def edge() -> float:
        d = extent * float(rng.uniform(0.6, 0.85))
        return d if rng.random() < 0.5 else 1.0 - d

    axes = int(rng.integers(3))  # 0: x at an edge, 1: y at an edge, 2: both (a corner)
    cx = edge() if axes in (0, 2) else float(rng.uniform(max(lo, 0.3), min(hi, 0.7)))
    cy = edge() if axes in (1, 2) else float(rng.uniform(max(lo, 0.3), min(hi, 0.7)))
    return cx, cy


def _ood_colour(rng: np.random.Generator, avoid: Sequence[RGB]) -> RGB:
    for _ in range(1000):
        c = rng.integers(0, 256, size=3)
        if all(np.linalg.norm(c - np.asarray(a)) >= _OOD_MIN_COLOUR_DISTANCE for a in avoid):
            return (int(c[0]), int(c[1]), int(c[2]))
    raise RuntimeError("no background colour far enough from the objects")  # pragma: no cover


def _place_relation(
    a: PlacedShape, b: PlacedShape, relation: str, rng: np.random.Generator
) -> tuple[PlacedShape, PlacedShape] | None:
    """Move *a* and *b* (sizes kept) so that ``a <relation> b`` holds clearly; ``None`` if they do not fit.

    Positions are drawn for "left of" and mapped to the other relations by mirroring / transposing.
    """
    ea, eb, m = a.extent, b.extent, _MARGIN
    dmin = max(_REL_MIN_DIST, ea + eb + _GAP)
    ax_hi = 1.0 - eb - m - dmin
    if ax_hi < ea + m:
        return None
    ax = float(rng.uniform(ea + m, ax_hi))
    bx = float(rng.uniform(ax + dmin, 1.0 - eb - m))
    ay = float(rng.uniform(ea + m, 1.0 - ea - m))
    tol = _REL_TOLERANCE_SAMPLE * (bx - ax) * 0.98
    dy_lo, dy_hi = max(-tol, eb + m - ay), min(tol, 1.0 - eb - m - ay)
    if dy_lo > dy_hi:
        return None
    by = ay + float(rng.uniform(dy_lo, dy_hi))
    if relation in ("right of", "below"):
        ax, bx = 1.0 - ax, 1.0 - bx
    if relation in ("above", "below"):
        ax, ay, bx, by = ay, ax, by, bx
    return replace(a, cx=ax, cy=ay), replace(b, cx=bx, cy=by)


def sample_scene(spec: PromptSpec, rng: RngLike = None, *, ood: Iterable[str] = ()) -> Scene:
    """Draw a random scene that follows *spec* (``satisfies(scene, spec)`` is always true).

    ``ood`` lists factors from :data:`OOD_FACTORS` to draw outside the training distribution:
    ``"size"`` (objects smaller or larger than any training object), ``"position"`` (objects
    crossing the image border), ``"background"`` (unnamed random colours and gradients; only
    allowed when *spec* names no background). Raises ``ValueError`` for impossible captions,
    e.g. a background colour equal to an object colour.
    """
    rng = _as_rng(rng)
    ood = set(ood)
    if unknown := ood - set(OOD_FACTORS):
        raise ValueError(f"unknown out-of-distribution factors: {sorted(unknown)}")
    if spec.background is not None and spec.background in {t.colour for t in spec.things}:
        raise ValueError(f"{spec.caption!r}: an object cannot have the background colour")
    things = spec.things * 2 if spec.kind == "two" else spec.things
    n = len(things)

    for _ in range(10_000):
        shapes = []
        for t in things:
            radius = _sample_radius(rng, n, "size" in ood)
            extent = radius * _EXTENT[t.shape]
            cx, cy = _sample_centre(rng, extent, "position" in ood)
            angle = 0.0 if t.shape == "circle" else float(rng.uniform(-_MAX_ANGLE, _MAX_ANGLE))
            rgb = _jitter(COLOURS[t.colour], _COLOUR_JITTER, rng)
            shapes.append(PlacedShape(t.shape, t.colour, rgb, cx, cy, radius, angle))
        if n == 2:
            if spec.kind == "rel" and "position" not in ood:
                placed = _place_relation(shapes[0], shapes[1], str(spec.relation), rng)
                if placed is None:
                    continue
                shapes = list(placed)
            a, b = shapes
            if math.hypot(a.cx - b.cx, a.cy - b.cy) < a.extent + b.extent + _GAP:
                continue
            if spec.kind == "rel" and relation_between(a, b, _REL_TOLERANCE_SAMPLE) != spec.relation:
                continue
            if rng.random() < 0.5 and spec.kind != "rel":
                shapes = [b, a]
        break
    else:  # pragma: no cover - the ranges above always leave room
        raise RuntimeError(f"could not place the objects of {spec.caption!r}")

    if "background" in ood and spec.background is None:
        # Out of distribution: an unnamed colour, or a gradient between two of them.
        background: str | None = None
        avoid = [COLOURS[t.colour] for t in things]
        first = _ood_colour(rng, avoid)
        second = _ood_colour(rng, avoid) if rng.random() < 0.5 else first
        background_rgb = (first, second)
    else:
        background = spec.background or str(rng.choice(_compatible_backgrounds(things)))
        bg = np.asarray(_jitter(BACKGROUND_COLOURS[background], _BACKGROUND_JITTER, rng))
        # Half of the named backgrounds get soft shading: +-_SHADING per channel between the ends.
        shade = rng.uniform(-_SHADING, _SHADING, 3) if rng.random() < 0.5 else np.zeros(3)
        background_rgb = (_to_rgb(bg - shade), _to_rgb(bg + shade))
    angle = float(rng.uniform(0.0, 360.0))
    noise = float(rng.uniform(0.0, _NOISE_MAX))
    scene = Scene(tuple(shapes), background, background_rgb, noise, int(rng.integers(2**31)), angle)
    assert satisfies(scene, spec), (spec, scene)
    return scene


def _polygon(shape: PlacedShape, side: float) -> list[tuple[float, float]]:
    cx, cy, r = shape.cx * side, shape.cy * side, shape.radius * side
    if shape.shape == "square":
        radii, n, start = [r * _EXTENT["square"]], 4, 45.0
    elif shape.shape == "triangle":
        radii, n, start = [r * _EXTENT["triangle"]], 3, 90.0
    elif shape.shape == "star":
        radii, n, start = [r * _EXTENT["star"], r * _EXTENT["star"] * 0.5], 10, 90.0
    else:  # pragma: no cover
        raise ValueError(shape.shape)
    points = []
    for k in range(n):
        theta = math.radians(start + shape.angle + 360.0 * k / n)
        rad = radii[k % len(radii)]
        points.append((cx + rad * math.cos(theta), cy - rad * math.sin(theta)))
    return points


def render(scene: Scene, size: int = 64, supersample: int = 4) -> Image.Image:
    """Draw *scene* as a ``size`` × ``size`` RGB image (anti-aliased by drawing ``supersample`` times larger).

    The training data of the demo model is rendered at ``size=64``; larger sizes give the same
    picture at a higher resolution (CLIP preprocessing resizes it back to the model input size).
    """
    big = size * supersample
    first, second = scene.background_rgb
    if first == second:
        canvas = Image.new("RGB", (big, big), first)
    else:  # a smooth gradient: compute it at the output size and upsample
        a = math.radians(scene.gradient_angle)
        cos, sin = math.cos(a), math.sin(a)
        ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        w = 0.5 + (ramp[None, :] * cos + ramp[:, None] * sin) / (abs(cos) + abs(sin))
        ends = np.asarray([first, second], np.float32)
        pixels = ends[0] + (ends[1] - ends[0]) * w[:, :, None]
        canvas = Image.fromarray(np.round(pixels).astype(np.uint8), "RGB").resize((big, big), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    for shape in scene.shapes:
        if shape.shape == "circle":
            cx, cy, r = shape.cx * big, shape.cy * big, shape.radius * big
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shape.rgb)
        else:
            draw.polygon(_polygon(shape, big), fill=shape.rgb)
    image = canvas.reduce(supersample) if supersample > 1 else canvas
    if scene.noise > 0:
        noise = np.random.default_rng(scene.noise_seed).standard_normal((size, size, 3), dtype=np.float32)
        pixels = np.clip(np.asarray(image, np.float32) + noise * np.float32(scene.noise), 0, 255)
        image = Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    return image


def object_masks(scene: Scene, size: int = 64, supersample: int = 4) -> np.ndarray:
    """Per-object coverage maps, float32 array ``(len(scene.shapes), size, size)`` with values in ``[0, 1]``
    (the fraction of each pixel covered by the object, on the same grid as :func:`render`)."""
    big = size * supersample
    masks = np.zeros((len(scene.shapes), size, size), np.float32)
    for i, shape in enumerate(scene.shapes):
        canvas = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(canvas)
        if shape.shape == "circle":
            cx, cy, r = shape.cx * big, shape.cy * big, shape.radius * big
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            draw.polygon(_polygon(shape, big), fill=255)
        small = canvas.reduce(supersample) if supersample > 1 else canvas
        masks[i] = np.asarray(small, np.float32) / 255.0
    return masks


def sample_example(rng: RngLike = None, *, size: int = 64, **spec_kwargs: object) -> tuple[Image.Image, PromptSpec]:
    """A training pair: a random caption (:func:`sample_spec` keyword arguments) and an image following it."""
    rng = _as_rng(rng)
    spec = sample_spec(rng, **spec_kwargs)  # type: ignore[arg-type]
    return render(sample_scene(spec, rng), size), spec


def render_prompt(
    prompt: str | PromptSpec,
    *,
    follow: bool = True,
    rng: RngLike = None,
    size: int = 64,
    ood: Iterable[str] = (),
    change: str | Sequence[str] | None = None,
) -> tuple[Image.Image, Scene]:
    """Render an image for a caption of the demo grammar (string or :class:`PromptSpec`).

    ``follow=True`` draws a scene that follows the caption; ``follow=False`` a deliberately
    mismatched one (one attribute changed, see :func:`mismatch_spec`; ``change`` picks which).
    Returns the ``size`` × ``size`` image and the drawn :class:`Scene` (``describe(scene)`` tells
    what is actually shown). Raises ``ValueError`` if a string is not a caption of the grammar.
    """
    rng = _as_rng(rng)
    spec = parse_caption(prompt) if isinstance(prompt, str) else prompt
    if spec is None:
        raise ValueError(
            f"not a demo caption: {prompt!r} (try e.g. 'a red circle', 'two yellow stars', "
            "'a green triangle on a white background', 'a red circle to the left of a blue star')"
        )
    if follow:
        scene = sample_scene(spec, rng, ood=ood)
    else:
        for _ in range(1000):
            scene = sample_scene(mismatch_spec(spec, rng, change=change), rng, ood=ood)
            if not satisfies(scene, spec):
                break
        else:  # pragma: no cover
            raise RuntimeError(f"could not draw a mismatched scene for {spec.caption!r}")
    return render(scene, size), scene


@dataclass(frozen=True)
class Example:
    """A rendered demo image: the ``prompt`` it was made for, whether it ``follows`` it, the drawn
    ``scene`` and ``shown``, a caption of what the image actually shows."""

    prompt: str
    image: Image.Image
    follows: bool
    scene: Scene
    shown: str


def render_examples(
    prompts: Sequence[str | PromptSpec],
    *,
    per_prompt: int = 4,
    follow_fraction: float = 0.5,
    seed: int = 0,
    size: int = 256,
    change: str | Sequence[str] | None = None,
) -> list[Example]:
    """Render ``per_prompt`` images for each prompt: the first ``round(per_prompt * follow_fraction)``
    follow it, the rest are deliberately mismatched. Deterministic for a given ``seed``.

    ``follow_fraction`` is in ``[0, 1]``; ``size`` is the image side in pixels; ``change`` restricts
    the edits of mismatched images (see :func:`mismatch_spec`; e.g. :data:`DEMO_MODEL_CHANGES`).
    """
    if not 0.0 <= follow_fraction <= 1.0:
        raise ValueError("follow_fraction must be in [0, 1]")
    rng = np.random.default_rng(seed)
    n_follow = round(per_prompt * follow_fraction)
    examples = []
    for prompt in prompts:
        text = prompt.caption if isinstance(prompt, PromptSpec) else prompt
        for i in range(per_prompt):
            follows = i < n_follow
            image, scene = render_prompt(prompt, follow=follows, rng=rng, size=size, change=change)
            examples.append(Example(text, image, follows, scene, describe(scene)))
    return examples

"""Scenes of the demo: where the shapes are, what captions a scene follows, random scenes for a caption.

Positions and sizes are fractions of the image side (origin top-left, ``y`` down); colours 8-bit sRGB; tilts
and gradient directions in degrees. See :mod:`clipgauge.demo.scenes` for the conventions and the exhaustive
caption semantics of :func:`satisfies`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .captions import (
    BACKGROUND_COLOURS,
    COLOURS,
    RGB,
    PromptSpec,
    RngLike,
    Thing,
    _as_rng,
    _compatible_backgrounds,
)

#: Factors that :func:`sample_scene` can move out of the training distribution.
OOD_FACTORS: tuple[str, ...] = ("size", "position", "background")

# Nominal radius ranges (fraction of the image side) in and out of the training distribution.
_RADIUS_ONE = (0.13, 0.28)
_RADIUS_PAIR = (0.10, 0.18)
_RADIUS_ONE_OOD = ((0.075, 0.11), (0.30, 0.34))
_RADIUS_PAIR_OOD = ((0.065, 0.085), (0.195, 0.215))
#: Bounding-circle radius of each shape, in units of its nominal radius.
EXTENT = {"circle": 1.0, "square": 1.25, "triangle": 1.2, "star": 1.25}
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
        return self.radius * EXTENT[self.shape]


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
            extent = radius * EXTENT[t.shape]
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

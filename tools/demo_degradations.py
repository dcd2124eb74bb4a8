"""Clean demo renders and degraded copies of them: the data of the demo aesthetic head.

Used by ``tools/train_demo_aesthetic.py`` (training and the model card's held-out evaluation) and by
``tests/test_demo_aesthetic.py``; it lives outside the ``clipgauge`` package because only they need it.

A *clean* image is a scene of the demo grammar (:func:`clipgauge.demo.scenes.sample_scene` for a random
caption of ``demo_sampling.sample_spec``) drawn by the demo renderer. Its *degraded* copy is the same scene
with one of :data:`KINDS` applied. Severities are defined on the 64-pixel grid the demo CLIP sees (its
input side), so that a degradation is equally visible whatever the render size: ``f = size / 64`` below.

* ``blur``: Gaussian blur, radius 1.2-2.5 input pixels (``1.2 f`` to ``2.5 f`` image pixels).
* ``noise``: Gaussian noise, std 20-45 (8-bit units) per input pixel (a grain of ``f`` x ``f`` image pixels).
* ``jpeg``: JPEG blocking: the image is saved as a JPEG of quality 2-10 at the input side (8 x 8 blocks of
  1/8 of the picture) and scaled back to its size (nearest neighbour, so the blocks stay sharp).
* ``contrast``: contrast reduced to 20-45% around the mean grey (``PIL.ImageEnhance.Contrast``).
* ``cutoff``: one object moved so that 45-75% of its bounding radius lies beyond the image border, on one side
  or at a corner (the clean renders keep every object inside with a margin).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

import demo_sampling
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from clipgauge.demo.scenes import Scene, render, sample_scene

#: Kinds of degradation, in the order used by reports.
KINDS: tuple[str, ...] = ("blur", "noise", "jpeg", "contrast", "cutoff")
#: Side of the demo CLIP's input in pixels (severities are defined on this grid).
INPUT_SIDE = 64


@dataclass(frozen=True)
class Pair:
    """A clean render and its degraded copy (same scene); ``kind`` is one of :data:`KINDS`."""

    clean: Image.Image
    degraded: Image.Image
    kind: str
    scene: Scene
    #: the drawn severity: blur radius and noise std in input pixels / 8-bit units, JPEG quality, contrast
    #: factor, or the fraction of the object's bounding radius beyond the border
    level: float


#: Range of each kind's severity level (uniform): blur radius (input pixels), noise std (8-bit units), JPEG
#: quality (integer), contrast factor (1: unchanged), fraction of the object's bounding radius beyond the border.
LEVELS: dict[str, tuple[float, float]] = {
    "blur": (1.2, 2.5),
    "noise": (20.0, 45.0),
    "jpeg": (2, 10),
    "contrast": (0.2, 0.45),
    "cutoff": (0.45, 0.75),
}


def _blur(image: Image.Image, level: float, f: float, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=level * f))


def _noise(image: Image.Image, level: float, f: float, rng: np.random.Generator) -> Image.Image:
    side = image.size[0]
    cells = max(1, round(side / f))
    field = rng.standard_normal((cells, cells, 3)).astype(np.float32) * np.float32(level)
    if cells != side:  # one noise value per input pixel, repeated over its f x f image pixels
        idx = np.minimum((np.arange(side) * cells) // side, cells - 1)
        field = field[idx][:, idx]
    pixels = np.clip(np.asarray(image, np.float32) + field, 0, 255)
    return Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")


def _jpeg(image: Image.Image, level: float, f: float, rng: np.random.Generator) -> Image.Image:
    side = image.size[0]
    small = image.resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.BICUBIC) if side != INPUT_SIDE else image
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=int(level))
    out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out.resize((side, side), Image.Resampling.NEAREST) if side != INPUT_SIDE else out


def _contrast(image: Image.Image, level: float, f: float, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(level)


def cut_off(scene: Scene, level: float, rng: np.random.Generator) -> Scene:
    """*scene* with one object moved so that the fraction *level* (0..1) of its bounding radius crosses the image
    border (on one axis, or two for a corner), clear of the other object."""
    for _ in range(1000):
        k = int(rng.integers(len(scene.shapes)))
        shape = scene.shapes[k]
        d = shape.extent * (1.0 - level)  # distance of the centre from the border it crosses
        axes = int(rng.integers(3))  # 0: left/right border, 1: top/bottom, 2: a corner
        cx = (d if rng.random() < 0.5 else 1.0 - d) if axes in (0, 2) else shape.cx
        cy = (d if rng.random() < 0.5 else 1.0 - d) if axes in (1, 2) else shape.cy
        moved = replace(shape, cx=cx, cy=cy)
        others = [s for i, s in enumerate(scene.shapes) if i != k]
        if all(math.hypot(moved.cx - o.cx, moved.cy - o.cy) >= moved.extent + o.extent + 0.02 for o in others):
            return replace(scene, shapes=tuple(moved if i == k else s for i, s in enumerate(scene.shapes)))
    raise RuntimeError("could not move an object across the border")  # pragma: no cover


_FILTERS = {"blur": _blur, "noise": _noise, "jpeg": _jpeg, "contrast": _contrast}


def draw_level(kind: str, rng: np.random.Generator, levels: dict[str, tuple[float, float]] | None = None) -> float:
    """A severity level of *kind*, uniform in its range (:data:`LEVELS`, or *levels* where given)."""
    lo, hi = (levels or {}).get(kind, LEVELS[kind])
    return float(rng.integers(int(lo), int(hi) + 1)) if kind == "jpeg" else float(rng.uniform(lo, hi))


def degrade(image: Image.Image, scene: Scene, kind: str, level: float, rng: np.random.Generator) -> Image.Image:
    """The degraded copy of *image* (a square render of *scene*): one of :data:`KINDS` at severity *level*."""
    size = image.size[0]
    if kind == "cutoff":
        return render(cut_off(scene, level, rng), size)
    if kind not in _FILTERS:
        raise ValueError(f"unknown degradation {kind!r} (one of {KINDS})")
    return _FILTERS[kind](image, level, size / INPUT_SIDE, rng)


def sample_pairs(
    n: int,
    seed: int,
    *,
    sizes: tuple[int, ...] = (64, 128, 256),
    kinds: tuple[str, ...] = KINDS,
    levels: dict[str, tuple[float, float]] | None = None,
) -> list[Pair]:
    """*n* (clean, degraded) pairs: kinds cycle through *kinds*; each render side is drawn from *sizes* (pixels),
    each severity from *levels* (default :data:`LEVELS`).

    Deterministic for a given ``seed``; different seeds give independent scenes and degradations.
    """
    rng = np.random.default_rng([seed, 7])
    pairs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        size = int(rng.choice(sizes))
        spec = demo_sampling.sample_spec(rng)
        scene = sample_scene(spec, rng)
        clean = render(scene, size)
        level = draw_level(kind, rng, levels)
        pairs.append(Pair(clean, degrade(clean, scene, kind, level, rng), kind, scene, level))
    return pairs

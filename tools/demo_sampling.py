"""Random captions and training pairs for the demo CLIP's trainer (``tools/train_demo_model.py``).

Used only by the trainer, its evaluation (``tools/demo_evaluate.py``), tests and benchmarks, so it lives
outside the ``clipgauge`` package; ``clipgauge demo`` needs only :mod:`clipgauge.demo.scenes`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from clipgauge.demo.captions import (
    COLOURS,
    PREFIXES,
    RELATIONS,
    SHAPES,
    PromptSpec,
    RngLike,
    Thing,
    _as_rng,
    _compatible_backgrounds,
)
from clipgauge.demo.drawing import polygon, render
from clipgauge.demo.layout import Scene, sample_scene

#: Default caption-kind probabilities used for training.
DEFAULT_KIND_WEIGHTS: dict[str, float] = {"one": 0.5, "two": 0.15, "and": 0.1, "rel": 0.25}


def single_object_specs(prefix: int = 0) -> list[PromptSpec]:
    """The 32 single-object captions (every colour × shape), colour-major order, no background."""
    return [PromptSpec("one", (Thing(c, s),), prefix=prefix) for c in COLOURS for s in SHAPES]


def _random_thing(rng: np.random.Generator) -> Thing:
    return Thing(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))

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
            draw.polygon(polygon(shape, big), fill=255)
        small = canvas.reduce(supersample) if supersample > 1 else canvas
        masks[i] = np.asarray(small, np.float32) / 255.0
    return masks


def sample_example(rng: RngLike = None, *, size: int = 64, **spec_kwargs: object) -> tuple[Image.Image, PromptSpec]:
    """A training pair: a random caption (:func:`sample_spec` keyword arguments) and an image following it."""
    rng = _as_rng(rng)
    spec = sample_spec(rng, **spec_kwargs)  # type: ignore[arg-type]
    return render(sample_scene(spec, rng), size), spec

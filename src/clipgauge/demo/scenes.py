"""Procedural scenes of simple coloured shapes, their captions, and a small caption grammar.

This module is the image generator of ``clipgauge demo`` and the data source of the bundled demo
CLIP (``tools/train_demo_model.py``). It depends on PIL and numpy only. It is the front of three
modules and re-exports their public names: :mod:`~clipgauge.demo.captions` (the caption grammar),
:mod:`~clipgauge.demo.layout` (scenes, their meaning, random scenes for a caption) and
:mod:`~clipgauge.demo.drawing` (rendering). Random captions and training pairs, used only by the
trainer, are in ``tools/demo_sampling.py``.

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .captions import (
    BACKGROUND_COLOURS,
    CHANGES,
    COLOURS,
    DEMO_MODEL_CHANGES,
    INVERSE_RELATION,
    KINDS,
    PREFIXES,
    RELATIONS,
    RGB,
    SHAPES,
    PromptSpec,
    RngLike,
    Thing,
    _as_rng,
    mismatch_spec,
    parse_caption,
)
from .drawing import render
from .layout import OOD_FACTORS, PlacedShape, Scene, describe, relation_between, sample_scene, satisfies, scene_keys


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


__all__ = [
    "BACKGROUND_COLOURS",
    "CHANGES",
    "COLOURS",
    "DEMO_MODEL_CHANGES",
    "INVERSE_RELATION",
    "KINDS",
    "OOD_FACTORS",
    "PREFIXES",
    "RELATIONS",
    "RGB",
    "SHAPES",
    "Example",
    "PlacedShape",
    "PromptSpec",
    "RngLike",
    "Scene",
    "Thing",
    "describe",
    "mismatch_spec",
    "parse_caption",
    "relation_between",
    "render",
    "render_examples",
    "render_prompt",
    "sample_scene",
    "satisfies",
    "scene_keys",
]

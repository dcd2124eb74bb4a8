"""Drawing a :class:`~clipgauge.demo.layout.Scene` as an anti-aliased RGB image (PIL + numpy)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .layout import EXTENT, PlacedShape, Scene


def polygon(shape: PlacedShape, side: float) -> list[tuple[float, float]]:
    """The outline of a non-circular *shape* in pixels of a ``side`` × ``side`` canvas."""
    cx, cy, r = shape.cx * side, shape.cy * side, shape.radius * side
    if shape.shape == "square":
        radii, n, start = [r * EXTENT["square"]], 4, 45.0
    elif shape.shape == "triangle":
        radii, n, start = [r * EXTENT["triangle"]], 3, 90.0
    elif shape.shape == "star":
        radii, n, start = [r * EXTENT["star"], r * EXTENT["star"] * 0.5], 10, 90.0
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
            draw.polygon(polygon(shape, big), fill=shape.rgb)
    image = canvas.reduce(supersample) if supersample > 1 else canvas
    if scene.noise > 0:
        noise = np.random.default_rng(scene.noise_seed).standard_normal((size, size, 3), dtype=np.float32)
        pixels = np.clip(np.asarray(image, np.float32) + noise * np.float32(scene.noise), 0, 255)
        image = Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    return image

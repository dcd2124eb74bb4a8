"""Image corruptions at five severities, after ImageNet-C (Hendrycks & Dietterich, ICLR 2019).

The definitions and severity parameters are those of ``make_imagenet_c.py`` in ``hendrycks/robustness``, written
in numpy, scipy and Pillow and applied at each image's own size (ImageNet-C works on 224 × 224 crops):

============== ========================================================== ===============================
corruption     definition (x: RGB in [0, 1] unless said)                    severities 1 … 5
============== ========================================================== ===============================
gaussian_noise ``clip(x + N(0, c²), 0, 1)``, one draw per pixel and channel  c = .08, .12, .18, .26, .38
gaussian_blur  Gaussian filter per channel, σ = c, edges repeated (``nearest``, σ = 1, 2, 3, 4, 6
               as skimage's ``gaussian``), truncated at 4σ
jpeg           re-encoded as JPEG by Pillow at quality c                    c = 25, 18, 15, 10, 7
contrast       ``clip((x − m)·c + m, 0, 1)``, m the mean of each channel    c = .4, .3, .2, .1, .05
pixelate       box-downscaled to ``max(1, int(side·c))`` and box-upscaled   c = .6, .5, .4, .3, .25
               back (downscale then upscale)
============== ========================================================== ===============================

Results are cast back to 8 bits as ImageNet-C does (``np.uint8`` of the clipped value × 255: truncation).
Gaussian noise draws from the :class:`numpy.random.Generator` it is given, so a seeded generator makes it
reproducible; the others are deterministic.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

#: severity parameters, severities 1 … 5 (ImageNet-C's ``c``)
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "jpeg": (25, 18, 15, 10, 7),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
}
#: the corruptions, in report order
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITIES)


def _unit(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _to_image(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255))


def gaussian_noise(image: Image.Image, c: float, rng: np.random.Generator) -> Image.Image:
    """Additive Gaussian noise of standard deviation *c* (in [0, 1] units) drawn from *rng*."""
    x = _unit(image)
    return _to_image(x + rng.normal(size=x.shape, scale=c))


def gaussian_blur(image: Image.Image, c: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Gaussian blur of standard deviation *c* pixels per channel (scipy ``gaussian_filter``, mode ``nearest``)."""
    from scipy.ndimage import gaussian_filter

    x = _unit(image)
    return _to_image(gaussian_filter(x, sigma=(c, c, 0), mode="nearest", truncate=4.0))


def jpeg(image: Image.Image, c: float, rng: np.random.Generator | None = None) -> Image.Image:
    """The image re-encoded as a JPEG of quality *c* (Pillow) and decoded again."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=int(c))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def contrast(image: Image.Image, c: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Contrast reduced to the fraction *c* around each channel's mean."""
    x = _unit(image)
    means = x.mean(axis=(0, 1), keepdims=True)
    return _to_image((x - means) * c + means)


def pixelate(image: Image.Image, c: float, rng: np.random.Generator | None = None) -> Image.Image:
    """Box-downscaled by the factor *c* and box-upscaled back to the original size."""
    image = image.convert("RGB")
    w, h = image.size
    small = image.resize((max(1, int(w * c)), max(1, int(h * c))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.BOX)


_FUNCTIONS: dict[str, Callable[..., Image.Image]] = {
    "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "jpeg": jpeg, "contrast": contrast,
    "pixelate": pixelate,
}


def corruption_rng(seed: int, row: int, corruption: str, severity: int) -> np.random.Generator:
    """The generator a corruption of row *row* at *severity* draws from: one independent stream per
    (seed, row, corruption, severity), so results do not depend on batching or on which corruptions run."""
    return np.random.default_rng([int(seed), int(row), CORRUPTIONS.index(corruption), int(severity)])


def corrupt(image: Image.Image, corruption: str, severity: int, rng: np.random.Generator | None = None
            ) -> Image.Image:
    """*image* under *corruption* (one of :data:`CORRUPTIONS`) at *severity* 1 … 5. *rng*: where Gaussian noise
    draws from (default: an unseeded generator). :class:`ValueError` for an unknown corruption or severity."""
    if corruption not in _FUNCTIONS:
        raise ValueError(f"unknown corruption '{corruption}' (known: {', '.join(CORRUPTIONS)})")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1 … 5, not {severity}")
    c = SEVERITIES[corruption][int(severity) - 1]
    return _FUNCTIONS[corruption](image, c, rng if rng is not None else np.random.default_rng())

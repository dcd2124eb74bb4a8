"""Small embedded thumbnails: image file → downscaled JPEG → ``data:`` URI.

Images are decoded with :func:`clipgauge.decode.load_image`, so a thumbnail shows exactly the picture
that was scored (EXIF orientation applied, transparency on white, 16-bit reduced, first frame).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..decode import load_image
from ..errors import RowError

#: JPEG quality of thumbnails (0–100): small files, no visible blocking at thumbnail size.
JPEG_QUALITY = 82


@dataclass(frozen=True)
class Thumbnail:
    """A ``data:image/jpeg;base64,…`` URI with its size in pixels, or the reason there is none."""

    uri: str | None
    width: int = 0
    height: int = 0
    error: str | None = None


def thumbnail(path: str | Path, size: int) -> Thumbnail:
    """The image at *path* scaled to fit *size* × *size* pixels (never enlarged), as a JPEG data URI.

    A file that cannot be read or decoded gives ``Thumbnail(None, error=reason)``; nothing raises.
    """
    try:
        img = load_image(Path(path))
    except RowError as exc:
        return Thumbnail(None, error=exc.reason)
    except Exception as exc:  # noqa: BLE001 - one bad image must not stop the report
        return Thumbnail(None, error=f"cannot make a thumbnail: {type(exc).__name__}: {exc}")
    img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Thumbnail(uri, img.width, img.height)


def thumbnails(paths: Sequence[str | Path], size: int, *, workers: int | None = None) -> list[Thumbnail]:
    """:func:`thumbnail` of every path, in order, decoded in a few threads (each distinct file once)."""
    if not paths:
        return []
    unique = list(dict.fromkeys(Path(p) for p in paths))
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="clipgauge-thumb") as pool:
        made = dict(zip(unique, pool.map(lambda p: thumbnail(p, size), unique)))
    return [made[Path(p)] for p in paths]

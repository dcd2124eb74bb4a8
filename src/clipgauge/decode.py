"""Decode image files into the RGB picture a person sees.

This is where metric implementations silently disagree, so every rule is explicit:

* EXIF orientation is applied;
* transparency (RGBA, LA, PA, palette with transparency) is composited onto white;
* 16-bit images are scaled to 8 bits as ``round(value / 257)``, never clipped or truncated;
* CMYK, grayscale and 1-bit images are converted to RGB;
* animated GIF/WebP/APNG: the first frame;
* images above a pixel limit are refused before decoding (decompression-bomb guard);
* only regular files are read, and no more than a byte limit (``clipgauge.image_files``): pipes, devices,
  sockets and folders are refused before they are opened, and memory stays bounded whatever a path holds.

The model's own preprocessing (resize, crop, normalise) happens afterwards, in the encoder.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DecodeError
from .image_files import DEFAULT_MAX_IMAGE_BYTES, check_size, read_image_file

#: Default limit in pixels (width × height): Pillow's own bomb-warning threshold (~89.5 MP).
DEFAULT_MAX_PIXELS = 89_478_485

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_WHITE = (255, 255, 255)


def load_image(source: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft: int | None = None,
               max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> Image.Image:
    """Return *source* as an 8-bit RGB ``PIL.Image`` decoded by the rules of this module.

    *source* may be a path (``str``/``os.PathLike``), raw ``bytes``, a ``PIL.Image``, or an image
    array/tensor: ``uint8`` in 0..255 or floating point in [0, 1], shaped (H, W), (H, W, C) or (C, H, W)
    with C in {1, 3, 4}. Raises :class:`DecodeError` with a short reason when it cannot be decoded, and for a path
    that is not a regular file or a file or bytes of more than *max_bytes* bytes (:mod:`clipgauge.image_files`).

    *draft* (opt-in, not exact): JPEGs are decoded by libjpeg's DCT scaling straight to the smallest
    1/2, 1/4 or 1/8 size whose sides stay >= *draft* pixels — faster, but the pixels differ from a full
    decode followed by the model's resize (the deviation is measured in ``benchmarks/``).
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, (str, os.PathLike)):
        return _load_bytes(read_file(source, max_bytes), max_pixels, draft)
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_size(source, max_bytes)
        return _load_bytes(bytes(source), max_pixels, draft)
    if hasattr(source, "shape"):
        return array_to_image(source)
    raise DecodeError(f"unsupported image input of type {type(source).__name__}")


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file, at most *max_bytes*; :class:`DecodeError` with a short reason if it cannot be
    read, is not a regular file (a pipe, a device, a socket, a folder) or is larger
    (:func:`clipgauge.image_files.read_image_file`)."""
    return read_image_file(path, max_bytes)


def _load_bytes(data: bytes, max_pixels: int, draft: int | None = None) -> Image.Image:
    if not data:
        raise DecodeError("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise DecodeError(f"image too large to decode safely: {w}x{h} pixels > limit {max_pixels}")
            if _is_16bit_color_png(data):
                return _png16_to_rgb(data, img)
            if draft and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            img.seek(0)
            img.load()
        except DecodeError:
            raise
        except UnidentifiedImageError:
            raise DecodeError("not an image (unrecognised format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DecodeError("image too large to decode safely (decompression-bomb guard)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DecodeError(f"corrupt or truncated image: {reason}") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation, flatten transparency onto white, reduce 16-bit to 8-bit, return RGB."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(_scale16(arr), "L").convert("RGB")
    if mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("L", "1", "P") and "transparency" in img.info:
        return to_rgb(img.convert("RGBA"))
    if mode != "RGB":
        img = img.convert("RGB")
    return img


def _scale16(arr: np.ndarray) -> np.ndarray:
    """16-bit values (0..65535) → 8-bit as round(v / 257)."""
    return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)


def _is_16bit_color_png(data: bytes) -> bool:
    # IHDR is the first chunk: bytes 24 and 25 are bit depth and colour type (2 = RGB, 6 = RGBA).
    return data[:8] == _PNG_SIGNATURE and len(data) > 26 and data[24] == 16 and data[25] in (2, 6)


def _png16_to_rgb(data: bytes, img: Image.Image) -> Image.Image:
    """Pillow truncates 16-bit colour PNGs to their high byte; decode the full 16 bits with pypng."""
    import png  # pypng

    width, height, rows, info = png.Reader(bytes=data).read()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
    arr8 = _scale16(arr.astype(np.float64))
    out = Image.fromarray(arr8, "RGBA" if planes == 4 else "RGB")
    exif = img.getexif()
    if exif:
        out.info["exif"] = exif.tobytes()
        out.getexif().update(exif)
    return to_rgb(out)


def array_to_image(arr: Any) -> Image.Image:
    """Convert a uint8 (0..255) or float ([0, 1]) array/tensor of shape (H, W[, C]) or (C, H, W) to RGB."""
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu()
        if str(arr.dtype) == "torch.bfloat16":
            arr = arr.float()
        arr = arr.numpy()
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise DecodeError(f"image array has unsupported shape {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        arr8 = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
            raise DecodeError("float image values must lie in [0, 1]")
        arr8 = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype == np.uint16:
        arr8 = _scale16(arr.astype(np.float64))
    else:
        raise DecodeError(f"unsupported image dtype {arr.dtype}")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr8.shape[-1] if arr8.ndim == 3 else 2]
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr8), mode))


"""Images are decoded to the picture a person sees, and bad files give a short reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import jpeg_bytes, random_rgb
from PIL import Image

from clipgauge.decode import load_image
from clipgauge.errors import DecodeError


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB(A) PNG written by hand (Pillow cannot write them)."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_rgba_composited_on_white():
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 0] = 200  # red channel
    arr[:2, :, 3] = 0  # top half transparent
    arr[2:, :, 3] = 255
    arr[3, 3, 3] = 128  # half transparent
    out = np.asarray(load_image(png_bytes(Image.fromarray(arr, "RGBA"))))
    assert out.shape == (4, 4, 3)
    assert (out[:2] == 255).all()
    assert tuple(out[2, 0]) == (200, 0, 0)
    a = 128 / 255  # alpha blend: a * colour + (1 - a) * white
    assert tuple(out[3, 3]) == tuple(int(round(a * c + (1 - a) * 255)) for c in (200, 0, 0))


def test_la_and_palette_transparency_on_white():
    alpha = np.array([[0, 255], [255, 255]], np.uint8)
    la = Image.fromarray(np.stack([np.full((2, 2), 10, np.uint8), alpha], -1), "LA")
    out = np.asarray(load_image(png_bytes(la)))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (10, 10, 10)
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    out = np.asarray(load_image(png_bytes(pal, transparency=0)))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 255, 0)


def test_16bit_gray_scaled_by_257_rounded():
    values = np.array([[0, 128, 129, 385], [32896, 65000, 65535, 200]], np.uint16)
    out = np.asarray(load_image(png_bytes(Image.fromarray(values))))
    expected = np.rint(values / 257).astype(np.uint8)
    assert (out[..., 0] == expected).all() and (out[..., 1] == expected).all()


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_png_scaled_by_257_rounded(channels):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65536, (5, 7, channels)).astype(np.uint16)
    if channels == 4:
        arr[..., 3] = 65535
    arr[0, 0, :3] = [200, 383, 32896]  # Pillow alone truncates these to 0, 1, 128
    out = np.asarray(load_image(png16_rgb(arr)))
    expected = np.rint(arr[..., :3] / 257).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert tuple(out[0, 0]) == (1, 1, 128)


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    out = load_image(jpeg_bytes(img, exif=exif.tobytes()))
    assert out.size == (20, 40)
    top = np.asarray(out)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue band is now on top


def test_cmyk_and_grayscale_to_rgb():
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # red
    out = load_image(jpeg_bytes(cmyk))
    assert out.mode == "RGB" and np.asarray(out)[1, 1, 0] > 200
    gray = load_image(png_bytes(Image.new("L", (2, 2), 77)))
    assert gray.mode == "RGB" and tuple(np.asarray(gray)[0, 0]) == (77, 77, 77)
    one_bit = load_image(png_bytes(Image.new("1", (2, 2), 1)))
    assert tuple(np.asarray(one_bit)[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_first_frame(fmt):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=50, loop=0, **(
        {"lossless": True} if fmt == "WEBP" else {}))
    out = np.asarray(load_image(buf.getvalue()))
    assert out[4, 4, 0] > 200 and out[4, 4, 2] < 50


def test_bad_files_give_short_reasons(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    full = png_bytes(random_rgb(0, size=(64, 64)))
    (tmp_path / "trunc.png").write_bytes(full[: len(full) // 2])
    jpg = jpeg_bytes(random_rgb(1, size=(64, 64)))
    (tmp_path / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    cases = {
        "missing.png": "file not found",
        "empty.png": "empty file",
        "text.png": "not an image",
        "trunc.png": "corrupt or truncated",
        "trunc.jpg": "corrupt or truncated",
    }
    for name, reason in cases.items():
        with pytest.raises(DecodeError, match=reason) as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value)


def test_decompression_bomb_refused_before_decoding():
    big = png_bytes(Image.new("L", (3000, 3000)))
    with pytest.raises(DecodeError, match="too large"):
        load_image(big, max_pixels=1_000_000)
    assert load_image(big, max_pixels=10_000_000).size == (3000, 3000)


def test_arrays_and_tensors():
    img = random_rgb(0, size=(8, 6))
    arr = np.asarray(img)
    ref = np.asarray(load_image(img))
    for src in (arr, arr.transpose(2, 0, 1), torch.from_numpy(arr.copy()).permute(2, 0, 1),
                torch.from_numpy(arr.copy()).float().div(255).permute(2, 0, 1)):
        np.testing.assert_array_equal(np.asarray(load_image(src)), ref)
    with pytest.raises(DecodeError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 3.0, np.float32))
    with pytest.raises(DecodeError, match="shape"):
        load_image(np.zeros((5, 5, 7), np.uint8))
    with pytest.raises(DecodeError, match="unsupported image input"):
        load_image(12)

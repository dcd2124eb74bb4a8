"""The opt-in device decode path (``Scorer(decode="gpu")``, ``clipgauge score --decode gpu``). Not exact.

The exact path (``decode="cpu"``, the default) decodes with Pillow and resizes with PIL in worker threads. This
one moves both onto the model's device, for runs where decoding, not the model, limits the speed:

1. worker threads read the file bytes and look at the JPEG's headers only (:func:`fallback_reason`);
2. per batch, ``torchvision.io.decode_jpeg(list, device=...)`` decodes the JPEGs together (nvJPEG on CUDA;
   libjpeg-turbo on a CPU device, which is how the tests run this path without a GPU);
3. ``torchvision.transforms.v2.functional.resize`` (antialiased bicubic, or bilinear when the model's plan
   says so) resizes the shortest side as :meth:`CropPlan.geometry` says, on the device, images of one size
   together; the centre crop is a slice; the uint8 crops then meet the model's exact normalisation table.

The resize is torch's (bicubic a = -0.75, float arithmetic) and not PIL's (a = -0.5, fixed point), and
nvJPEG's IDCT and chroma upsampling are not libjpeg's, so pixels and cosines differ from the exact path by a
small, measured amount (:data:`DECODE_EFFECTS`, ``benchmarks/gpu_decode.py``, written into provenance).

Images the device path does not take go, each with its reason, to the exact path, which gives them exactly
the exact path's pixels or error: anything that is not JPEG file bytes (PNG, WebP, in-memory images), CMYK or
YCCK and RGB-coded (Adobe) JPEGs, grayscale JPEGs, progressive JPEGs (nvJPEG's hardware decoder takes only
baseline ones), an EXIF orientation other than 1 (the exact path rotates), and anything the device decoder
rejects. The same rules hold on every device, so what the CPU tests check is what a GPU run does.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DecodeError, UsageError
from ..image_files import DEFAULT_MAX_IMAGE_BYTES, image_bytes
from .pipeline import Item, Skip, failed, prepare_image

DECODES = ("cpu", "gpu")

#: What each decode path does to a score, as measured (``benchmarks/RESULTS.md``); written to every provenance.
DECODE_EFFECTS = {
    "cpu": "exact: Pillow decode and PIL resize, bit-identical to the reference preprocessing (tested)",
    "gpu": "torchvision decode_jpeg + antialiased tensor resize on the model's device; vs the exact path, measured "
           "on a CPU device (libjpeg-turbo, torch's CPU resize): max |dcos| 2.6e-5 (mean 1.7e-6) on the trained demo "
           "CLIP and 5.0e-5 (mean 8.3e-6) on ViT-B/32 shapes with random weights, 192 512-px JPEGs each "
           "(benchmarks/gpu_decode.py); nvJPEG and the CUDA resize: not yet measured (no GPU lent so far)",
}
#: decoded pixels per device call (bounds the memory of full-size decoded images: 64 MP = 192 MiB)
DECODE_PIXELS = 1 << 26
_ORIENTATION = 0x0112
_RESIZE = {2: "BILINEAR", 3: "BICUBIC"}


def check_decode(decode: str, fast_decode: bool) -> str:
    """*decode* checked: ``cpu`` (exact) or ``gpu``; :class:`UsageError` otherwise or together with fast_decode."""
    if decode not in DECODES:
        raise UsageError(f"unknown decode path '{decode}' (choose from {', '.join(DECODES)})")
    if decode == "gpu" and fast_decode:
        raise UsageError("fast_decode and decode='gpu' are two different approximate decoders: choose one",
                         cli="--fast-decode and --decode gpu are two different approximate decoders: choose one")
    return decode


def fallback_reason(data: bytes, max_pixels: int) -> str | None:
    """Why the encoded image *data* goes to the exact CPU path (None: the device decodes it). Reads headers only."""
    return _probe(data, max_pixels)[0]


def _probe(data: bytes, max_pixels: int) -> tuple[str | None, tuple[int, int]]:
    """(:func:`fallback_reason`, the (width, height) in the header)."""
    if data[:3] != b"\xff\xd8\xff":
        return "not a JPEG", (0, 0)
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - the exact path gives the row its reason
        return "unreadable JPEG header", (0, 0)
    w, h = img.size
    reason = None
    if img.format != "JPEG":
        reason = f"not a plain JPEG ({img.format})"
    elif w * h > max_pixels:
        reason = "too large"
    elif img.mode == "CMYK":
        reason = "CMYK or YCCK JPEG"
    elif img.mode != "RGB":
        reason = "grayscale JPEG" if img.mode == "L" else f"{img.mode} JPEG"
    elif img.info.get("adobe") is not None and img.info.get("adobe_transform") == 0:
        reason = "RGB-coded (Adobe) JPEG"
    elif img.info.get("progressive") or img.info.get("progression"):
        reason = "progressive JPEG"
    elif img.getexif().get(_ORIENTATION) not in (None, 1):
        reason = f"EXIF orientation {img.getexif().get(_ORIENTATION)}"
    return reason, (w, h)


@dataclass
class Encoded:
    """A JPEG waiting for the device decoder: its file bytes (also as the 1-D uint8 tensor the decoder takes, made
    in the worker thread) and its size in the header."""

    data: bytes
    width: int
    height: int
    tensor: torch.Tensor


class TensorDecoder:
    """Decodes, resizes and crops the JPEGs of a batch on a device, with the exact path for the rest.

    *plan* is the model's :class:`~clipgauge.encoders.crop_plan.CropPlan`; counts of images decoded on the
    device and of fallbacks (by reason) are kept for provenance.
    """

    def __init__(self, plan: Any, max_pixels: int, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> None:
        if plan is None:
            raise UsageError("decode='gpu' needs a model with the standard CLIP preprocessing (resize, centre crop, "
                             "normalise); this model preprocesses its own way: use decode='cpu'",
                             cli="--decode gpu needs a model with the standard CLIP preprocessing (resize, centre "
                                 "crop, normalise); this model preprocesses its own way: use --decode cpu")
        try:
            from torchvision.io import ImageReadMode, decode_jpeg
            from torchvision.transforms.v2 import InterpolationMode
            from torchvision.transforms.v2 import functional as tvf
        except ImportError:
            raise UsageError("decode='gpu' needs torchvision (pip install torchvision)",
                             cli="--decode gpu needs torchvision (pip install torchvision)") from None
        self.plan, self.max_pixels, self.max_bytes = plan, int(max_pixels), int(max_bytes)
        self._decode_jpeg, self._rgb, self._resize = decode_jpeg, ImageReadMode.RGB, tvf.resize
        self._mode = getattr(InterpolationMode, _RESIZE.get(plan.resample, "BICUBIC"))
        self._lock = threading.Lock()
        self.on_device = 0
        self.fallbacks: Counter[str] = Counter()

    # ------------------------------------------------------------------ worker threads
    def prepare(self, src: Any) -> Item:
        """One image, in a worker thread: a JPEG for the device (``Item.pixels`` is :class:`Encoded`), or the
        exact path's uint8 crop or error. Never raises."""
        if isinstance(src, Skip):
            return Item(skip=src.reason)
        try:
            src = image_bytes(src, self.max_bytes)  # a path read (a regular file, bounded); bytes checked
        except DecodeError as exc:
            return failed(exc)
        if not isinstance(src, (bytes, bytearray, memoryview)):
            return self._fallback(src, "not encoded file bytes (an in-memory image)")
        data = bytes(src)
        reason, (w, h) = _probe(data, self.max_pixels)
        if reason is not None:
            return self._fallback(data, reason)
        return Item(pixels=Encoded(data, w, h, torch.frombuffer(bytearray(data), dtype=torch.uint8)))

    def _fallback(self, src: Any, reason: str) -> Item:
        item = prepare_image(src, self.plan.crop, max_pixels=self.max_pixels, draft=None, max_bytes=self.max_bytes)
        if item.skip is None:
            with self._lock:
                self.fallbacks[reason] += 1
        return item

    # ------------------------------------------------------------------ the batch, on the device
    def decode_batch(self, items: list[Item], device: torch.device) -> list[Item]:
        """Give every item of a batch uint8 crop pixels (a (crop_h, crop_w, 3) tensor on *device*): JPEGs decoded,
        resized and cropped there, the rest from the exact path. Items that no path decodes get their reason and
        are left out of the returned list (the items to encode)."""
        pending = [it for it in items if isinstance(it.pixels, Encoded)]
        chunk: list[Item] = []
        pixels = 0
        for it in pending:
            chunk.append(it)
            pixels += it.pixels.width * it.pixels.height
            if pixels >= DECODE_PIXELS:
                self._decode_chunk(chunk, device)
                chunk, pixels = [], 0
        if chunk:
            self._decode_chunk(chunk, device)
        for it in items:
            if isinstance(it.pixels, np.ndarray):
                it.pixels = torch.from_numpy(it.pixels).to(device)
        return [it for it in items if it.skip is None and it.pixels is not None]

    def _decode_chunk(self, chunk: list[Item], device: torch.device) -> None:
        data = [it.pixels.tensor for it in chunk]
        try:
            images: list[torch.Tensor | None] = list(self._decode(data, device))
        except RuntimeError:  # one bad file fails the whole call: decode them one by one
            images = []
            for d in data:
                try:
                    images.append(self._decode([d], device)[0])
                except RuntimeError:
                    images.append(None)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (it, im) in enumerate(zip(chunk, images)):
            if im is not None and tuple(im.shape) == (3, it.pixels.height, it.pixels.width):
                groups.setdefault((it.pixels.width, it.pixels.height), []).append(i)
            else:
                done = self._fallback(it.pixels.data, "rejected by the device decoder")
                it.pixels, it.skip = done.pixels, done.skip
        for (w, h), idx in groups.items():
            new_w, new_h, top, left = self.plan.geometry(w, h)
            group = [images[i] for i in idx]
            if group[0].is_contiguous():
                batch = torch.stack(group)
            else:  # libjpeg's (H, W, 3) memory seen as (3, H, W): stack it as is, a channels-last batch
                batch = torch.stack([im.permute(1, 2, 0) for im in group]).permute(0, 3, 1, 2)
            if (new_w, new_h) != (w, h):
                batch = self._resize(batch, [new_h, new_w], interpolation=self._mode, antialias=True)
            crops = batch[:, :, top : top + self.plan.crop_h, left : left + self.plan.crop_w].permute(0, 2, 3, 1)
            for i, crop in zip(idx, crops):
                chunk[i].pixels = crop
        with self._lock:
            self.on_device += sum(len(idx) for idx in groups.values())

    def _decode(self, data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its image decoders in favour of TorchCodec
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._decode_jpeg(data, mode=self._rgb, device=device)

    # ------------------------------------------------------------------ provenance
    def describe(self, device: torch.device) -> dict[str, Any]:
        """The path, its measured effect, and this process's counts (device-decoded, fallbacks by reason)."""
        with self._lock:
            counts = dict(self.fallbacks)
            n = self.on_device
        return {"path": "gpu", "effect": DECODE_EFFECTS["gpu"],
                "decoder": "nvJPEG (torchvision.io.decode_jpeg)" if device.type == "cuda"
                else f"libjpeg-turbo (torchvision.io.decode_jpeg on {device.type})",
                "resize": f"torchvision {self._mode.value}, antialiased, on {device}",
                "images_decoded_on_device": n, "fallbacks_to_exact_path": counts}


def decode_provenance(decoder: TensorDecoder | None, device: torch.device) -> dict[str, Any]:
    """The ``decode`` block of a scorer's provenance."""
    if decoder is None:
        return {"path": "cpu", "effect": DECODE_EFFECTS["cpu"]}
    return decoder.describe(device)

"""``ScorerSettings``: how a model is loaded and run, declared once (defaults and meaning) for every caller.

:class:`~clipgauge.Scorer` takes them as keyword arguments, :class:`~clipgauge.ScoreOptions` extends them with
what a run computes, :class:`~clipgauge.track.CLIPTracker` and the torchmetrics adapter pass them on. None of
them changes a number except ``precision``, ``fast_decode`` and ``decode`` (the documented inexact options).
No heavy imports here: the CLI reads the defaults at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from ..decode import DEFAULT_MAX_PIXELS
from ..image_files import DEFAULT_MAX_IMAGE_BYTES

_S = TypeVar("_S", bound="ScorerSettings")


@dataclass(frozen=True, kw_only=True)
class ScorerSettings:
    """Settings of a loaded model, all keyword-only and immutable (:meth:`with_` gives a changed copy)."""

    #: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N`` (or a ``torch.device``)
    device: Any = "auto"
    #: images (and prompts) per forward pass, >= 1; never changes the scores
    batch_size: int = 32
    #: ``fp32`` (default, exact), ``bf16`` or ``fp16`` (GPU) autocast for the encoders
    precision: str = "fp32"
    #: threads that decode and preprocess images while the model runs (None: the cores, at most 8)
    num_workers: int | None = None
    #: text put before every prompt (e.g. ``"a photo of "``)
    prompt_prefix: str = ""
    #: images with more pixels (width x height) are refused (decompression-bomb guard)
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    #: image files (and in-memory image bytes) larger than this many bytes are refused, never read whole (512 MiB)
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: run a hub model's own code (models that ship their modelling code)
    trust_remote_code: bool = False
    #: folder of an on-disk embedding cache (:mod:`clipgauge.scoring.cache`); None: off
    cache_dir: str | os.PathLike | None = None
    #: decode JPEGs at a reduced DCT scale (>= the model's input size): faster, NOT exact
    fast_decode: bool = False
    #: ``cpu`` (exact, default) or ``gpu``: JPEGs decoded and resized on the model's device, NOT exact
    decode: str = "cpu"
    #: distinct prompt embeddings kept in memory (emptied when exceeded; a prompt seen again is re-encoded)
    max_cached_prompts: int = 100_000

    def with_(self: _S, **changes: Any) -> _S:
        """A copy with *changes* (``TypeError`` for a name that is not a setting)."""
        return replace(self, **changes) if changes else self

    def scorer_settings(self) -> ScorerSettings:
        """Only the scorer settings (of a subclass such as ``ScoreOptions``), as a plain ``ScorerSettings``."""
        return ScorerSettings(**{name: getattr(self, name) for name in SETTING_NAMES})


#: the names of every scorer setting, in declaration order
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ScorerSettings))


def split_settings(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(*kwargs* that are scorer settings, the rest): for APIs that pass other keyword arguments on."""
    ours = {k: v for k, v in kwargs.items() if k in SETTING_NAMES}
    return ours, {k: v for k, v in kwargs.items() if k not in ours}

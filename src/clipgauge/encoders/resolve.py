"""The one place where model spec strings are parsed and turned into encoders.

Accepted specs:

* ``demo`` — the small CLIP shipped inside clipgauge (offline, for trying things out);
* ``hf:ID_OR_DIR`` or a bare hub id / local folder — a transformers ``CLIPModel``;
* ``open_clip:ARCH:PRETRAINED`` — OpenCLIP, PRETRAINED a tag (``laion2b_s34b_b79k``, ``openai``) or a
  local checkpoint path; ``open_clip:hf-hub:ORG/NAME`` — an OpenCLIP model on the Hugging Face hub.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..defaults import DEFAULT_MODEL
from ..errors import ModelLoadError
from .base import Encoder
from .clip_pil import ClipPilPlan

__all__ = ["DEFAULT_MODEL", "demo_model_dir", "early_crop_plan", "resolve_encoder"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def demo_model_dir() -> Path:
    """The folder of the shipped demo CLIP (transformers format)."""
    return Path(__file__).resolve().parent.parent / "demo" / "model"


def resolve_encoder(spec: str, *, trust_remote_code: bool = False) -> Encoder:
    """Turn a model spec into a loaded encoder (on CPU). Raises :class:`ModelLoadError` with one line."""
    spec = spec.strip()
    if not spec:
        raise ModelLoadError("empty model spec")
    if spec == "demo":
        from .hf import HFEncoder

        folder = demo_model_dir()
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"the demo model is missing from this installation ({folder})")
        return HFEncoder(str(folder), spec="demo")
    if spec.startswith("open_clip:"):
        return _open_clip(spec)
    if spec.startswith("hf:"):
        source = spec[3:]
        if not source:
            raise ModelLoadError("hf: needs a hub id or a folder, e.g. hf:openai/clip-vit-base-patch32")
        return _hf(source, spec, trust_remote_code)
    if Path(spec).expanduser().is_dir():
        return _hf(spec, spec, trust_remote_code)
    if _HUB_ID.match(spec):
        return _hf(spec, spec, trust_remote_code)
    raise ModelLoadError(
        f"unknown model '{spec}': use a Hugging Face id (openai/clip-vit-large-patch14), hf:DIR, "
        "open_clip:ARCH:PRETRAINED, open_clip:hf-hub:ORG/NAME, or demo"
    )


def early_crop_plan(spec: str) -> ClipPilPlan | None:
    """The image preprocessing a transformers model spec will use, read from its ``preprocessor_config.json``
    (local folder, the demo model, or the local hub cache) without importing transformers or loading weights.

    Provisional: the scorer compares it with the loaded model's own plan before using anything made with
    it. None when it cannot be known cheaply (OpenCLIP models, uncached hub ids, non-standard settings).
    """
    spec = spec.strip()
    if spec.startswith("open_clip:") or not spec:
        return None
    if spec == "demo":
        folder: Path | None = demo_model_dir()
    else:
        source = spec[3:] if spec.startswith("hf:") else spec
        local = Path(source).expanduser()
        folder = local if local.is_dir() else None
        if folder is None and _HUB_ID.match(source):
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(source, "preprocessor_config.json")
            except Exception:  # noqa: BLE001 - a guess only; the real load reports problems
                return None
            return ClipPilPlan.from_config_file(cached) if isinstance(cached, str) else None
    if folder is None:
        return None
    return ClipPilPlan.from_config_file(folder / "preprocessor_config.json")


def _hf(source: str, spec: str, trust_remote_code: bool) -> Encoder:
    from .hf import HFEncoder

    local = Path(source).expanduser()
    if local.exists() and not (local / "config.json").exists():
        raise ModelLoadError(f"{local} is not a transformers model folder (no config.json)")
    return HFEncoder(str(local) if local.exists() else source, spec=spec, trust_remote_code=trust_remote_code)


def _open_clip(spec: str) -> Encoder:
    from .openclip import OpenCLIPEncoder

    rest = spec[len("open_clip:") :]
    if rest.startswith("hf-hub:"):
        if not _HUB_ID.match(rest[len("hf-hub:") :]):
            raise ModelLoadError(f"bad OpenCLIP hub spec '{spec}': use open_clip:hf-hub:ORG/NAME")
        return OpenCLIPEncoder(rest, None, spec=spec)
    arch, sep, pretrained = rest.partition(":")
    if not arch or not sep or not pretrained:
        raise ModelLoadError(
            f"bad OpenCLIP spec '{spec}': use open_clip:ARCH:PRETRAINED (a tag such as laion2b_s34b_b79k, "
            "or a checkpoint path)"
        )
    return OpenCLIPEncoder(arch, pretrained, spec=spec)

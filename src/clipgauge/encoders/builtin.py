"""The core model families (transformers, OpenCLIP, Long-CLIP, demo): how each parses its spec, loads it, and
guesses its preprocessing early.

Declared, with every other built-in family, in :data:`clipgauge.encoders.families.BUILTIN_FAMILIES`. Nothing heavy
is imported at module level: torch, transformers and open_clip are imported by the loaders, when a model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .spec import HUB_ID, ModelSpec


def demo_model_dir() -> Path:
    """The folder of the shipped demo CLIP (transformers format)."""
    return Path(__file__).resolve().parent.parent / "demo" / "model"


# ----------------------------------------------------------------------------------------------- parsing
def parse_hf(rest: str, text: str) -> ModelSpec:
    """``hf:ID_OR_DIR``."""
    if not rest:
        raise ModelLoadError("hf: needs a hub id or a folder, e.g. hf:openai/clip-vit-base-patch32")
    if Path(rest).expanduser().is_file():
        raise ModelLoadError(f"'{text}' names a file; hf: takes a hub id or the folder a model was saved to")
    return ModelSpec("transformers", text, source=rest)


def parse_bare(text: str) -> ModelSpec | None:
    """A spec without a prefix: a local folder or a hub id is a transformers model; anything else is None."""
    if Path(text).expanduser().is_dir() or HUB_ID.match(text):
        return ModelSpec("transformers", text, source=text)
    return None


def parse_open_clip(rest: str, text: str) -> ModelSpec:
    """``open_clip:ARCH:PRETRAINED`` or ``open_clip:hf-hub:ORG/NAME``."""
    if rest.startswith("hf-hub:"):
        repo = rest[len("hf-hub:"):]
        if not HUB_ID.match(repo):
            raise ModelLoadError(f"bad OpenCLIP hub spec '{text}': use open_clip:hf-hub:ORG/NAME")
        return ModelSpec("open_clip", text, source=repo, arch=rest)
    arch, sep, pretrained = rest.partition(":")
    if not arch or not sep or not pretrained:
        raise ModelLoadError(
            f"bad OpenCLIP spec '{text}': use open_clip:ARCH:PRETRAINED (a tag such as laion2b_s34b_b79k, "
            "or a checkpoint path)"
        )
    return ModelSpec("open_clip", text, arch=arch, pretrained=pretrained)


def parse_demo(rest: str, text: str) -> ModelSpec:
    return ModelSpec("demo", text)


# ----------------------------------------------------------------------------------------------- loading
def load_demo(spec: ModelSpec, **options: Any):
    from .hf import HFEncoder

    folder = demo_model_dir()
    if not (folder / "config.json").exists():
        raise ModelLoadError(f"the demo model is missing from this installation ({folder})")
    return HFEncoder(str(folder), spec="demo")


def load_transformers(spec: ModelSpec, *, trust_remote_code: bool = False, **options: Any):
    from .hf import HFEncoder

    where = transformers_source(spec)  # what the folder holds is transformers' to judge: its refusal is the line
    from .remote import read_config, refuse_without_trust, remote_code_classes

    auto_map = remote_code_classes(read_config(where) or {})
    if auto_map:  # a model with its own code (jinaai/jina-clip-v2): only when trusted
        if not trust_remote_code:
            raise refuse_without_trust(spec.text, auto_map)
        from .remote import RemoteCodeEncoder

        return RemoteCodeEncoder(where, spec=spec.text)
    return HFEncoder(where, spec=spec.text, trust_remote_code=trust_remote_code)


def transformers_source(spec: ModelSpec) -> str:
    """What transformers' ``from_pretrained`` is given for a ``transformers`` or ``demo`` spec: the local folder
    (``~`` expanded) when there is one, else the hub id as written."""
    if spec.family == "demo":
        return str(demo_model_dir())
    source = spec.source or spec.text
    local = Path(source).expanduser()
    return str(local) if local.exists() else source


def load_open_clip(spec: ModelSpec, **options: Any):
    from .openclip import OpenCLIPEncoder

    return OpenCLIPEncoder(spec.arch or "", spec.pretrained, spec=spec.text)


def load_longclip(spec: ModelSpec, **options: Any):
    from .longclip import LongCLIPEncoder

    return LongCLIPEncoder(spec.source or "", spec=spec.text)


# ------------------------------------------------------------------------------- preprocessing, early
def early_plan_demo(spec: ModelSpec):
    from .clip_pil import ClipPilPlan

    return ClipPilPlan.from_config_file(demo_model_dir() / "preprocessor_config.json")


def early_plan_transformers(spec: ModelSpec):
    """From the image processor's settings in the local folder or the local hub cache (see
    :func:`processor_config_file`), without importing transformers."""
    from .clip_pil import ClipPilPlan

    found = processor_config_file(spec.source or spec.text)
    return ClipPilPlan.from_config_file(found) if found is not None else None


def processor_config_file(source: str) -> Path | None:
    """The file transformers reads an image processor's settings from, in the folder or the locally cached hub repo
    *source*, as ``from_pretrained`` chooses it: ``processor_config.json`` when it nests them under
    ``"image_processor"`` (what transformers 5's ``CLIPProcessor.save_pretrained`` writes), else
    ``preprocessor_config.json`` (transformers 4's, or an image processor saved alone). None when neither is
    there. Never imports transformers; never raises."""
    local = Path(source).expanduser()

    def find(name: str) -> Path | None:
        if local.is_dir():
            return local / name if (local / name).is_file() else None
        if not HUB_ID.match(source):
            return None
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(source, name)
        return Path(hit) if isinstance(hit, str) else None

    try:
        nested = find("processor_config.json")
        if nested is not None and isinstance(json.loads(nested.read_text(encoding="utf-8")).get("image_processor"),
                                             dict):
            return nested
        return find("preprocessor_config.json")
    except Exception:  # noqa: BLE001 - unreadable: no early plan (the load says what is wrong)
        return None


def early_plan_open_clip(spec: ModelSpec):
    from .openclip_plan import early_open_clip_plan

    return early_open_clip_plan(spec.arch or "", spec.pretrained)

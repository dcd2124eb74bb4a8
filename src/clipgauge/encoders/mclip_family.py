"""The ``mclip:`` model family: its spec and its default image towers (no torch here).

``mclip:NAME[,image=SPEC]`` — an M-CLIP text tower (:mod:`.mclip`) with a CLIP image tower resolved like any other
spec. Declared in :data:`clipgauge.encoders.families.BUILTIN_FAMILIES` (by ``"module:attribute"`` paths: this module
sits above the registry, as it resolves its image tower through it), so it is known whenever
:mod:`clipgauge.encoders` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .registry import early_crop_plan, parse_model_spec, resolve_encoder
from .spec import ModelSpec

#: the image tower each published M-CLIP text tower was distilled against (their model cards)
MCLIP_IMAGE_TOWERS = {
    "M-CLIP/XLM-Roberta-Large-Vit-L-14": "openai/clip-vit-large-patch14",
    "M-CLIP/LABSE-Vit-L-14": "openai/clip-vit-large-patch14",
    "M-CLIP/XLM-Roberta-Large-Vit-B-32": "openai/clip-vit-base-patch32",
    "M-CLIP/XLM-Roberta-Large-Vit-B-16Plus": "open_clip:ViT-B-16-plus-240:laion400m_e32",
}
SEPARATOR = ",image="


def split_mclip_spec(rest: str, text: str) -> tuple[str, str]:
    """``(text tower, image tower spec)`` of ``mclip:NAME[,image=SPEC]``: the image tower from
    :data:`MCLIP_IMAGE_TOWERS` (by hub id, or a folder named like one) unless given; one-line error otherwise."""
    name, _, image = rest.partition(SEPARATOR)
    name, image = name.strip(), image.strip()
    if not name:
        raise ModelLoadError(f"'{text}' names no model: use mclip:M-CLIP/XLM-Roberta-Large-Vit-L-14 or "
                             f"mclip:FOLDER{SEPARATOR}SPEC")
    if not image:
        known = {k.split("/")[1]: v for k, v in MCLIP_IMAGE_TOWERS.items()}
        image = MCLIP_IMAGE_TOWERS.get(name) or known.get(Path(name).name, "")
        if not image:
            raise ModelLoadError(f"no known image tower for M-CLIP model '{name}': give the CLIP it was trained "
                                 f"against, e.g. mclip:{name}{SEPARATOR}openai/clip-vit-large-patch14")
    return name, image


def parse_mclip(rest: str, text: str) -> ModelSpec:
    """``mclip:NAME[,image=SPEC]`` (the image spec must parse too)."""
    _, image = split_mclip_spec(rest, text)
    parse_model_spec(image)
    return ModelSpec("mclip", text, source=rest)


def load_mclip(spec: ModelSpec, **options: Any):
    """The text tower, then the image tower through clipgauge's own resolver; their widths must agree."""
    from .mclip import MCLIPEncoder

    name, image_spec = split_mclip_spec(spec.source or "", spec.text)
    image = resolve_encoder(image_spec, trust_remote_code=bool(options.get("trust_remote_code")))
    encoder = MCLIPEncoder(name, image, spec=spec.text)
    dim = int(encoder.config["numDims"])
    module = image.module
    width = getattr(getattr(module, "config", None), "projection_dim", None) or getattr(
        getattr(module, "visual", None), "output_dim", None)
    if width is not None and int(width) != dim:
        raise ModelLoadError(f"M-CLIP model '{name}' embeds texts in {dim} dimensions but the image tower "
                             f"'{image_spec}' in {int(width)}: give the CLIP it was trained against "
                             f"(mclip:{name}{SEPARATOR}SPEC)")
    return encoder


def early_plan_mclip(spec: ModelSpec):
    """The image tower's preprocessing (an M-CLIP model's images are its image tower's)."""
    return early_crop_plan(split_mclip_spec(spec.source or "", spec.text)[1])


"""Model families behind one interface (:class:`~clipgauge.encoders.base.Encoder`).

Importing this package is cheap (no torch): :class:`Encoder` and :class:`Tokens` are imported on first use. Every
built-in model family (:mod:`.families`) is registered by then, whatever metrics a run uses.
"""

from __future__ import annotations

from typing import Any

from ..defaults import DEFAULT_MODEL
from .family import ModelFamily
from .registry import (  # registers every built-in family (clipgauge.encoders.families)
    ENTRY_POINT_GROUP,
    ModelLoader,
    early_crop_plan,
    list_model_families,
    list_model_loaders,
    parse_model_spec,
    register_model_family,
    register_model_loader,
    resolve_encoder,
)
from .spec import ModelSpec

__all__ = ["DEFAULT_MODEL", "ENTRY_POINT_GROUP", "CropPlan", "Encoder", "ModelFamily", "ModelLoader", "ModelSpec",
           "Tokens", "early_crop_plan", "list_model_families", "list_model_loaders", "parse_model_spec",
           "register_model_family", "register_model_loader", "resolve_encoder"]


def __getattr__(name: str) -> Any:  # torch-backed names, imported when first used
    if name in ("Encoder", "Tokens"):
        from . import base

        return getattr(base, name)
    if name == "CropPlan":
        from .crop_plan import CropPlan

        return CropPlan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

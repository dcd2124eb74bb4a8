"""Model spec strings → encoders (kept for existing imports; the work is in :mod:`.registry`).

Accepted specs:

* ``demo`` — the small CLIP shipped inside clipgauge (offline, for trying things out);
* ``hf:ID_OR_DIR`` or a bare hub id / local folder — a transformers ``CLIPModel``;
* ``open_clip:ARCH:PRETRAINED`` — OpenCLIP, PRETRAINED a tag (``laion2b_s34b_b79k``, ``openai``) or a
  local checkpoint path; ``open_clip:hf-hub:ORG/NAME`` — an OpenCLIP model on the Hugging Face hub;
* ``longclip:PATH``, ``mclip:ORG/NAME[,image=SPEC]``, ``pickscore:MODEL|PROCESSOR``, ``hpsv2:ARCH:CHECKPOINT``
  and the rest of the built-in families (:data:`clipgauge.encoders.families.BUILTIN_FAMILIES`);
* ``PREFIX:…`` of a family registered with :func:`~clipgauge.encoders.registry.register_model_loader` or
  the ``clipgauge.models`` entry-point group.
"""

from __future__ import annotations

from ..defaults import DEFAULT_MODEL
from .builtin import demo_model_dir
from .registry import early_crop_plan, parse_model_spec, resolve_encoder

__all__ = ["DEFAULT_MODEL", "demo_model_dir", "early_crop_plan", "parse_model_spec", "resolve_encoder"]

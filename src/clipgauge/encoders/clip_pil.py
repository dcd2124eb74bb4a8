"""The original CLIP image preprocessing of transformers (``CLIPImageProcessorPil``) as a :class:`CropPlan`.

The plan (PIL bicubic resize of the shortest edge, long edge rounded down with ``int()`` as the processor
does, centre crop, then a 3 × 256 table computed with the processor's arithmetic: float64 rescale → float32,
float32 subtract and divide) is described in :mod:`clipgauge.encoders.crop_plan`; this module reads it from
a loaded processor or from a ``preprocessor_config.json`` (or transformers 5's nested ``processor_config.json``).

A plan can be read from a model's ``preprocessor_config.json`` before transformers is even imported, so
that images decode while the model loads; the scorer only uses what was decoded that way after checking
that the loaded processor gives the same plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .crop_plan import CropPlan

#: ``CLIPImageProcessorPil``'s defaults, for keys a config file leaves out.
_DEFAULTS = {"do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
             "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
             "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711]}


class ClipPilPlan(CropPlan):
    """A :class:`CropPlan` with ``arithmetic="transformers"``, plus readers of transformers' settings."""

    @classmethod
    def from_processor(cls, p: Any) -> ClipPilPlan | None:
        """The plan of a loaded ``CLIPImageProcessorPil``, or None when its settings are not the standard ones."""
        return cls._from_settings({k: getattr(p, k, None) for k in _DEFAULTS} | {"do_pad": getattr(p, "do_pad", False)})

    @classmethod
    def from_config_file(cls, path: str | Path) -> ClipPilPlan | None:
        """A provisional plan from a ``preprocessor_config.json``, or a ``processor_config.json`` with the image
        processor nested under ``"image_processor"`` (transformers 5); None when unreadable or not standard."""
        try:
            cfg = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(cfg, dict) and isinstance(cfg.get("image_processor"), dict):
            cfg = cfg["image_processor"]
        if not isinstance(cfg, dict):
            return None
        settings = {k: cfg.get(k, v) for k, v in _DEFAULTS.items()}
        # old configs give ints: size = shortest edge, crop_size = a square
        if isinstance(settings["size"], int):
            settings["size"] = {"shortest_edge": settings["size"]}
        if isinstance(settings["crop_size"], int):
            settings["crop_size"] = {"height": settings["crop_size"], "width": settings["crop_size"]}
        settings["do_pad"] = cfg.get("do_pad", False)
        return cls._from_settings(settings)

    @classmethod
    def _from_settings(cls, s: dict[str, Any]) -> ClipPilPlan | None:
        try:
            size, crop = dict(s["size"] or {}), dict(s["crop_size"] or {})
            standard = (
                s["do_resize"] and s["do_center_crop"] and s["do_rescale"] and s["do_normalize"]
                and set(size) == {"shortest_edge"} and set(crop) == {"height", "width"}
                and crop["height"] <= size["shortest_edge"] and crop["width"] <= size["shortest_edge"]
                and not s["do_pad"] and len(s["image_mean"]) == 3 and len(s["image_std"]) == 3
            )
            if not standard:
                return None
            return cls(int(size["shortest_edge"]), int(crop["height"]), int(crop["width"]), int(s["resample"]),
                       float(s["rescale_factor"]), tuple(float(m) for m in s["image_mean"]),
                       tuple(float(x) for x in s["image_std"]))
        except (TypeError, ValueError, KeyError):
            return None

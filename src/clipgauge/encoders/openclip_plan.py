"""OpenCLIP's evaluation transform as a :class:`~clipgauge.encoders.crop_plan.CropPlan`, when it is the standard one.

:func:`plan_from_transform` reads the transform ``open_clip.create_model_and_transforms`` returned, and gives a
plan only for exactly this chain (open_clip 2.x and 3.x spell the middle two steps differently)::

    Compose([Resize(S, interpolation=BICUBIC or BILINEAR, max_size=None),   # int size: the shortest side
             CenterCrop((H, W)),                                            # H, W <= S
             _convert_to_rgb | MaybeConvertMode("RGB"),
             ToTensor() | MaybeToTensor(),
             Normalize(mean, std)])                                         # 3 channels

on PIL images (torchvision resizes them with ``PIL.Image.resize``, antialiasing included), with float32 the
default dtype. Anything else — ``resize_mode`` "squash" or "longest" (``ResizeKeepRatio``, ``CenterCropOrPad``),
a non-square size, torchvision v2 transforms, extra steps — gives None, and the per-image transform is used.

:func:`early_open_clip_plan` guesses the same plan from configuration files, without importing open_clip
(3–4 s on a busy two-core machine, on top of torch) and without loading weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from .crop_plan import CropPlan

#: open_clip's defaults (``PreprocessCfg`` and the ``_pcfg`` of most pretrained tags).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_PIL_RESAMPLE = {"bicubic": 3, "bilinear": 2}


def plan_from_transform(transform: Any) -> CropPlan | None:
    """The plan of an OpenCLIP evaluation transform, or None when it is not exactly the standard chain."""
    try:
        import torch
        from torchvision import transforms as T
    except ImportError:
        return None
    steps = getattr(transform, "transforms", None)
    if type(transform) is not T.Compose or not isinstance(steps, list) or len(steps) != 5:
        return None
    resize, crop, convert, to_tensor, normalize = steps
    if torch.get_default_dtype() != torch.float32:  # ToTensor would make other floats
        return None
    if type(resize) is not T.Resize or resize.max_size is not None:
        return None
    size = resize.size
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return None  # (H, W) sizes squash the image
    resample = {T.InterpolationMode.BICUBIC: 3, T.InterpolationMode.BILINEAR: 2}.get(resize.interpolation)
    if resample is None:
        return None
    if type(crop) is not T.CenterCrop:
        return None
    crop_size = tuple(crop.size) if isinstance(crop.size, (list, tuple)) else (crop.size, crop.size)
    if len(crop_size) != 2 or not all(isinstance(c, int) and 0 < c <= size for c in crop_size):
        return None
    if not (_is_rgb_conversion(convert) and _is_to_tensor(to_tensor, T)):
        return None
    if type(normalize) is not T.Normalize:
        return None
    mean, std = _triple(normalize.mean), _triple(normalize.std)
    if mean is None or std is None:
        return None
    return CropPlan(size, crop_size[0], crop_size[1], resample, 1 / 255, mean, std, arithmetic="torchvision")


def plan_from_preprocess_cfg(cfg: dict[str, Any]) -> CropPlan | None:
    """The plan ``open_clip.image_transform_v2(PreprocessCfg(**cfg), is_train=False)`` would build, or None."""
    size = cfg.get("size") or 224
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            return None  # open_clip uses ResizeKeepRatio for non-square sizes
        size = size[0]
    interpolation = cfg.get("interpolation") or "bicubic"
    resample = _PIL_RESAMPLE.get("bicubic" if interpolation == "random" else interpolation)  # as image_transform
    if (cfg.get("resize_mode") or "shortest") != "shortest" or resample is None:
        return None
    mean = _triple(cfg.get("mean") or OPENAI_MEAN)
    std = _triple(cfg.get("std") or OPENAI_STD)
    if mean is None or std is None or not isinstance(size, int) or isinstance(size, bool):
        return None
    return CropPlan(size, size, size, resample, 1 / 255, mean, std, arithmetic="torchvision")


def early_open_clip_plan(arch: str, pretrained: str | None) -> CropPlan | None:
    """A provisional plan for ``open_clip:ARCH:PRETRAINED`` / ``open_clip:hf-hub:ORG/NAME`` from config files.

    * ``hf-hub:ORG/NAME``: ``open_clip_config.json`` in the local hub cache (its ``model_cfg`` and
      ``preprocess_cfg``), as open_clip reads it.
    * a built-in architecture: its ``model_configs/ARCH.json`` inside the installed open_clip (read as a file,
      open_clip not imported) for the image size; a checkpoint path gets open_clip's default preprocessing,
      as it does in open_clip; a pretrained tag is guessed to have the default too (true of the OpenAI, LAION,
      DataComp and MetaCLIP tags; a wrong guess only means the scorer drops the prefetched crops).
      When open_clip is imported already, its own registry and pretrained configs are asked instead.
    """
    if arch.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(arch[len("hf-hub:"):], "open_clip_config.json")
        if not isinstance(cached, str):
            return None
        config = json.loads(Path(cached).read_text(encoding="utf-8"))
        return _plan_from_configs(config.get("model_cfg"), config.get("preprocess_cfg") or {})
    name = arch.replace("/", "-")
    open_clip = sys.modules.get("open_clip")
    tag_cfg: dict[str, Any] = {}
    if open_clip is not None:
        model_cfg = open_clip.get_model_config(name)
        if pretrained and not os.path.isfile(os.path.expanduser(pretrained)):
            tag_cfg = dict(open_clip.get_pretrained_cfg(name, pretrained) or {})
            if not tag_cfg:
                return None  # neither a tag nor a file: the load will fail
    else:
        model_cfg = _builtin_model_config(name)
    return _plan_from_configs(model_cfg, tag_cfg)


def _plan_from_configs(model_cfg: Any, preprocess_cfg: dict[str, Any]) -> CropPlan | None:
    if not isinstance(model_cfg, dict):
        return None
    cfg = {k: preprocess_cfg.get(k) for k in ("size", "mean", "std", "interpolation", "resize_mode")}
    image_size = (model_cfg.get("vision_cfg") or {}).get("image_size")
    if image_size is not None:  # create_model sets the size from the vision tower
        cfg["size"] = image_size
    return plan_from_preprocess_cfg(cfg)


def _builtin_model_config(name: str) -> dict[str, Any] | None:
    spec = importlib.util.find_spec("open_clip")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "model_configs" / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def _is_rgb_conversion(step: Any) -> bool:
    module = getattr(step, "__module__", "") or getattr(type(step), "__module__", "")
    if not module.startswith("open_clip"):
        return False
    if getattr(step, "__name__", None) == "_convert_to_rgb":  # open_clip 2.x: a function
        return True
    return type(step).__name__ == "MaybeConvertMode" and getattr(step, "mode", None) == "RGB"  # 3.x


def _is_to_tensor(step: Any, T: Any) -> bool:
    if type(step) is T.ToTensor:
        return True
    cls = type(step)  # open_clip 3.x: a ToTensor that passes tensors through (PIL images: F.to_tensor)
    return cls.__name__ == "MaybeToTensor" and cls.__module__.startswith("open_clip") and issubclass(cls, T.ToTensor)


def _triple(values: Any) -> tuple[float, ...] | None:
    try:
        if isinstance(values, (int, float)):
            values = (values,) * 3
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return out if len(out) == 3 else None

"""The ``pickscore:MODEL|PROCESSOR`` model family: a transformers ``CLIPModel`` with the tokenizer and image processor
of another repo, as PickScore v1 is published (no torch here; the model is loaded by :class:`.hf.HFEncoder`).

PickScore v1 (``yuvalkirstain/PickScore_v1``) holds only the model; its tokenizer and image processor are those of
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``. The metric ``pickscore`` (:mod:`clipgauge.metrics.pickscore`) and
``--metric clip --model pickscore:…`` share one loaded model through this family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .registry import TRANSFORMERS, early_crop_plan, parse_model_option
from .spec import ModelSpec

DEFAULT_MODEL = "yuvalkirstain/PickScore_v1"
DEFAULT_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
PREFIX = "pickscore:"
#: separates the model from its processor in a ``pickscore:`` spec (no hub id and hardly any path holds it)
SEPARATOR = "|"


def pickscore_spec(model: str = DEFAULT_MODEL, processor: str = DEFAULT_PROCESSOR) -> str:
    """The model spec of a PickScore model *model* (hub id or folder) with the tokenizer and image processor of
    *processor* (hub id or folder)."""
    return f"{PREFIX}{model}{SEPARATOR}{processor}"


def split_spec(rest: str) -> tuple[str, str]:
    """``(model, processor)`` of the text after ``pickscore:`` (the processor defaults to the published one)."""
    model, _, processor = rest.partition(SEPARATOR)
    return model.strip(), processor.strip() or DEFAULT_PROCESSOR


def parts(rest: str) -> tuple[ModelSpec, ModelSpec]:
    """The model and the processor of the text after ``pickscore:``, each parsed by the one model-spec grammar
    (hub id, ``hf:ID_OR_DIR``, folder, ``demo``); a one-line :class:`ModelLoadError` naming the option otherwise."""
    model, processor = split_spec(rest)
    return (parse_model_option(model, "pickscore:model", TRANSFORMERS),
            parse_model_option(processor, "pickscore:processor", TRANSFORMERS))


def parse_pickscore(rest: str, text: str) -> ModelSpec:
    """``pickscore:MODEL[|PROCESSOR]`` (both parts must parse)."""
    model, _ = split_spec(rest)
    if not model:
        raise ModelLoadError(f"'{text}' names no model: use pickscore:MODEL or pickscore:MODEL{SEPARATOR}PROCESSOR")
    parts(rest)
    return ModelSpec("pickscore", text, source=rest)


def local_source(source: str) -> Path | None:
    """*source* as an existing local path (``~`` expanded), else None (a hub id)."""
    path = Path(source).expanduser()
    return path if path.exists() else None


def load_pickscore(spec: ModelSpec, *, trust_remote_code: bool = False, **options: Any):
    """The encoder of a ``pickscore:MODEL|PROCESSOR`` spec: a transformers CLIPModel from MODEL with the tokenizer
    and PIL image processor of PROCESSOR, each loaded by transformers' own ``from_pretrained`` (whatever layout it
    reads: transformers 4's ``preprocessor_config.json``, transformers 5's ``processor_config.json``); its refusal
    is one line naming the option (``pickscore:processor=DIR: …``)."""
    from .builtin import transformers_source
    from .hf import HFEncoder
    from .hub import hub_unreachable, quiet_loading

    model, processor = parts(spec.source or "")
    model_source, processor_source = transformers_source(model), transformers_source(processor)
    for what, source, files, option in (
            ("model", model_source, ["config.json"], "model"),
            ("tokenizer and image processor", processor_source, ["preprocessor_config.json", "processor_config.json"],
             "processor")):
        if local_source(source) is not None:
            continue
        with quiet_loading():  # a hub id not in the local cache, with no hub to ask: one line, at once
            if hub_unreachable(source, files):
                raise ModelLoadError(f"PickScore {what} '{source}' is not in the local Hugging Face cache and the "
                                     f"hub cannot be reached; download it where there is network (hf download "
                                     f"{source}) and copy the cache, or give the metric option {option}= a local copy")
    return HFEncoder(model_source, spec=spec.text, trust_remote_code=trust_remote_code, processor=processor_source,
                     labels=(f"pickscore:model={model.text}", f"pickscore:processor={processor.text}"))


def early_plan_pickscore(spec: ModelSpec):
    """The processor's preprocessing, read from its config file without loading anything."""
    return early_crop_plan(parts(spec.source or "")[1])

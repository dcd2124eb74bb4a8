"""The model families clipgauge ships, as data: one :class:`~.family.ModelFamily` each, in the order ``clipgauge
metrics``, ``--model`` help and the unknown-model error list them.

Every one is registered when :mod:`clipgauge.encoders` is imported, whatever metrics a run uses. Their functions are
``"module:attribute"`` paths, imported when a spec of the family is parsed or loaded, so this table imports nothing.
A new built-in family is one module (its parse, load and early-plan functions) plus one row here.
"""

from __future__ import annotations

from .family import ModelFamily

_B = "clipgauge.encoders.builtin"

#: the built-in model families
BUILTIN_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "transformers", f"{_B}:load_transformers", "hf:", parse=f"{_B}:parse_hf",
        early_plan=f"{_B}:early_plan_transformers", own_errors=True,
        usage="a Hugging Face id (openai/clip-vit-large-patch14), hf:DIR",
        describe="a transformers CLIPModel: hf:ID_OR_DIR, or a bare hub id (openai/clip-vit-large-patch14) "
                 "or local folder"),
    ModelFamily(
        "open_clip", f"{_B}:load_open_clip", "open_clip:", parse=f"{_B}:parse_open_clip",
        early_plan=f"{_B}:early_plan_open_clip", own_errors=True,
        usage="open_clip:ARCH:PRETRAINED, open_clip:hf-hub:ORG/NAME",
        describe="an OpenCLIP model: open_clip:ARCH:PRETRAINED (tag or checkpoint path) or "
                 "open_clip:hf-hub:ORG/NAME (needs clipgauge[openclip])"),
    ModelFamily(
        "longclip", f"{_B}:load_longclip", "longclip:", own_errors=True, usage="longclip:PATH",
        describe="a Long-CLIP checkpoint (248-token text context): longclip:PATH to longclip-B.pt or longclip-L.pt "
                 "(needs clipgauge[openclip])"),
    ModelFamily(
        "demo", f"{_B}:load_demo", "demo", parse=f"{_B}:parse_demo", early_plan=f"{_B}:early_plan_demo",
        own_errors=True, usage="demo",
        describe="the small CLIP shipped inside clipgauge (offline, for trying things out)"),
    ModelFamily(
        "mclip", "clipgauge.encoders.mclip_family:load_mclip", "mclip:",
        parse="clipgauge.encoders.mclip_family:parse_mclip",
        early_plan="clipgauge.encoders.mclip_family:early_plan_mclip", usage="mclip:ORG/NAME[,image=SPEC]",
        describe="an M-CLIP multilingual text tower with the CLIP image tower it was trained against: mclip:ORG/NAME "
                 "or mclip:FOLDER, optionally ,image=SPEC (e.g. mclip:M-CLIP/XLM-Roberta-Large-Vit-L-14)"),
    ModelFamily(
        "pickscore", "clipgauge.encoders.pickscore:load_pickscore", "pickscore:",
        parse="clipgauge.encoders.pickscore:parse_pickscore",
        early_plan="clipgauge.encoders.pickscore:early_plan_pickscore", usage="pickscore:MODEL|PROCESSOR",
        describe="a transformers CLIPModel with another repo's tokenizer and image processor (PickScore v1): "
                 "pickscore:MODEL|PROCESSOR (default processor laion/CLIP-ViT-H-14-laion2B-s32B-b79K)"),
    ModelFamily(
        "hpsv2", "clipgauge.encoders.hpsv2:load_hpsv2", "hpsv2:", parse="clipgauge.encoders.hpsv2:parse_hpsv2",
        usage="hpsv2:ARCH:CHECKPOINT",
        describe="an HPSv2 checkpoint ({'state_dict': …} of a whole OpenCLIP model) with HPSv2's preprocessing: "
                 "hpsv2:ARCH:CHECKPOINT (file or hub file ORG/NAME/FILE; needs clipgauge[openclip])"),
)

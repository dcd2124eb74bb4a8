"""The ``hpsv2:ARCH:CHECKPOINT`` model family: an HPSv2 checkpoint on OpenCLIP ARCH, with HPSv2's preprocessing (no
torch at import: torch, torchvision and open_clip are imported when a model is loaded).

Each published file (``xswu/HPSv2``: ``HPS_v2_compressed.pt``, ``HPS_v2.1_compressed.pt``) holds
``torch.load(file)["state_dict"]``, the whole state dict of an OpenCLIP ViT-H-14. HPSv2's ``preprocess_val`` with
``light_augmentation=True`` is not OpenCLIP's usual resize-and-crop: ToTensor, then ``ResizeMaxSize`` (bicubic resize
of the *tensor* so that its longest side is 224, then zero padding to a centred 224 × 224 square), then normalisation
with the OpenAI mean and std. :class:`HPSv2Transform` does exactly that. The metrics ``hpsv2`` and ``hpsv21``
(:mod:`clipgauge.metrics.hpsv2`) and ``--metric clip --model hpsv2:…`` share one loaded model through this family.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UsageError
from .hub import resolve_weight_file
from .registry import WEIGHT_FILE, parse_model_option
from .spec import ModelSpec
from .weights import read_weights

HUB_REPO = "xswu/HPSv2"
FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
DEFAULT_ARCH = "ViT-H-14"
PREFIX = "hpsv2:"
#: the OpenAI CLIP mean and std, OpenCLIP's defaults for ViT-H-14 laion2b_s32b_b79k (HPSv2's preprocess_val)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------------------------------------- the transform
class HPSv2Transform:
    """HPSv2's ``preprocess_val`` (``image_transform(…, is_train=False, resize_longest_max=True)``) for RGB images:
    ``ToTensor`` → ``ResizeMaxSize(size)`` → ``Normalize(mean, std)``; returns float32 (3, size, size).

    ``ResizeMaxSize`` scales the [0, 1] tensor by ``size / longest side`` (new sides ``round(side × scale)``,
    bicubic, antialiased as torchvision ≥ 0.17 does by default) and pads with 0 (left/top get the smaller half).
    HPSv2's code skips the padding too when the longest side is already *size*, which then fails for non-square
    images; here such images are padded (a square one is left as it is, exactly as HPSv2 does).
    """

    def __init__(self, size: int = 224, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> None:
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)

    def __call__(self, image: Any):
        import torchvision.transforms.functional as F
        from torchvision.transforms import InterpolationMode

        t = F.to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = t.shape[1:]
        scale = self.size / float(max(height, width))
        new = (height, width)
        if scale != 1.0:
            new = tuple(round(dim * scale) for dim in (height, width))
            t = F.resize(t, list(new), InterpolationMode.BICUBIC, antialias=True)
        pad_h, pad_w = self.size - new[0], self.size - new[1]
        if pad_h or pad_w:
            t = F.pad(t, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        return F.normalize(t, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"HPSv2 preprocess_val: ToTensor, ResizeMaxSize({self.size}, bicubic on the tensor, antialias, "
                f"zero padding to a centred square), Normalize(mean={list(self.mean)}, std={list(self.std)})")


# ----------------------------------------------------------------------------------------------- the checkpoint
def resolve_checkpoint(text: str) -> tuple[Path, dict[str, Any]]:
    """``(local path, source)`` of a checkpoint given as a local file or a hub file ``ORG/NAME/FILE``, either
    optionally after ``hf:`` (the one model-spec grammar; downloaded into the Hugging Face cache). One-line errors
    when it cannot be found or reached."""
    source = parse_model_option(text, "hpsv2:checkpoint", WEIGHT_FILE).source or text
    return resolve_weight_file(source, f"HPSv2 checkpoint '{text}'", f"{HUB_REPO}/{FILES['v2.1']}")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state dict of an HPSv2 checkpoint: ``torch.load(path, weights_only=True)["state_dict"]`` (the published
    format; no code from the file runs), or a plain state dict / safetensors file with the same keys."""
    import torch

    data = read_weights(path, "HPSv2 checkpoint")
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = sorted(data)[:5] if isinstance(data, dict) else type(data).__name__
        raise ModelLoadError(f"HPSv2 checkpoint {path} holds no state dict of tensors under 'state_dict' "
                             f"(found {found})")
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _check_fits(state: dict[str, Any], model: Any, path: Path, arch: str) -> None:
    """One line naming the missing, unexpected and misshapen keys when *state* is not a state dict of *model*."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
              if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        what = [f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})" if missing else "",
                f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
                f"{len(shapes)} shapes differ (e.g. {'; '.join(shapes[:2])})" if shapes else ""]
        raise ModelLoadError(f"HPSv2 checkpoint {path} is not a state dict of OpenCLIP {arch}: "
                             f"{', '.join(w for w in what if w)}; give the architecture it was trained as "
                             f"(HPSv2 and HPSv2.1: {DEFAULT_ARCH})")


# ----------------------------------------------------------------------------------------------- the model family
@functools.cache
def _encoder_class():
    from .openclip import OpenCLIPEncoder

    class HPSv2Encoder(OpenCLIPEncoder):
        """OpenCLIP ARCH with an HPSv2 checkpoint loaded strictly, tokenised by OpenCLIP's tokenizer of ARCH,
        images preprocessed by :class:`HPSv2Transform`."""

        family = "hpsv2"

        def __init__(self, arch: str, checkpoint: str, *, spec: str) -> None:  # noqa: D107
            try:
                import open_clip
            except ImportError:
                raise UsageError(f"model '{spec}' needs OpenCLIP: pip install 'clipgauge[openclip]'") from None
            from .hub import quiet_loading

            self.spec, self.arch, self.pretrained = spec, arch, checkpoint
            self.checkpoint_path, self.checkpoint_source = resolve_checkpoint(checkpoint)
            state = read_checkpoint(self.checkpoint_path)
            try:
                with quiet_loading():
                    model = open_clip.create_model(arch)
                    self.tokenizer = open_clip.get_tokenizer(arch)
            except Exception as exc:  # noqa: BLE001 - an unknown or broken architecture: one line
                text = " ".join(str(exc).split())[:200]
                raise ModelLoadError(f"cannot build OpenCLIP architecture '{arch}' for '{spec}' (see "
                                     f"open_clip.list_models()): {text}") from None
            _check_fits(state, model, self.checkpoint_path, arch)
            model.load_state_dict(state, strict=True)
            self.module = model.eval()
            size = getattr(model.visual, "image_size", 224)
            size = int(size[0] if isinstance(size, (tuple, list)) else size)
            self.transform = HPSv2Transform(size)
            self._plan = None  # per-image transform: HPSv2's is not a resize-and-crop
            self.context_length = int(getattr(self.tokenizer, "context_length", None) or model.context_length)

        def preprocessing(self) -> dict[str, Any]:
            return {"implementation": "HPSv2 preprocess_val (light_augmentation=True), re-implemented with "
                                      "torchvision.transforms.functional",
                    "transform": repr(self.transform),
                    "decode": "clipgauge.decode: EXIF transpose, alpha over white, 16-bit /257, first frame, RGB"}

    return HPSv2Encoder


def hpsv2_spec(checkpoint: str, arch: str = DEFAULT_ARCH) -> str:
    """The model spec of an HPSv2 checkpoint (file or hub file ``ORG/NAME/FILE``) on OpenCLIP *arch*."""
    return f"{PREFIX}{arch}:{checkpoint}"


def parse_hpsv2(rest: str, text: str) -> ModelSpec:
    """``hpsv2:ARCH:CHECKPOINT``."""
    arch, sep, checkpoint = rest.partition(":")
    if not arch or not sep or not checkpoint.strip():
        raise ModelLoadError(f"bad HPSv2 spec '{text}': use hpsv2:ARCH:CHECKPOINT (an OpenCLIP architecture and "
                             f"a checkpoint file or hub file, e.g. hpsv2:{DEFAULT_ARCH}:{HUB_REPO}/{FILES['v2.1']})")
    return ModelSpec("hpsv2", text, arch=arch.strip(), pretrained=checkpoint.strip())


def load_hpsv2(spec: ModelSpec, **options: Any):
    """The encoder of an ``hpsv2:ARCH:CHECKPOINT`` spec."""
    return _encoder_class()(spec.arch or DEFAULT_ARCH, spec.pretrained or "", spec=spec.text)

"""``hpsv2`` and ``hpsv21``: Human Preference Score v2 and v2.1 (Wu et al. 2023), as ``hpsv2.score()`` computes them.

Each published file (``xswu/HPSv2``: ``HPS_v2_compressed.pt``, ``HPS_v2.1_compressed.pt``) holds
``torch.load(file)["state_dict"]``, the whole state dict of an OpenCLIP ViT-H-14 (keys ``visual.*``,
``transformer.*``, ``token_embedding.weight``, ``positional_embedding``, ``ln_final.*``, ``text_projection``,
``logit_scale``). HPSv2's code builds ``create_model_and_transforms('ViT-H-14', 'laion2B-s32B-b79K', …,
light_augmentation=True)``, loads that state dict strictly over it, and scores

    hps = normalize(encode_image(preprocess_val(image))) · normalize(encode_text(tokenizer([prompt])))

a cosine in [-1, 1] (about 0.2–0.35 for generated images). The benchmark tables of the HPSv2 README report
100 × the mean of these cosines (``evaluation.py``: ``image_features @ text_features.T * 100``); the summary gives
that number as ``x100``. Scores of v2.0 and v2.1 cannot be compared with each other.

``preprocess_val`` with ``light_augmentation=True`` is not OpenCLIP's usual resize-and-crop: ToTensor, then
``ResizeMaxSize`` (bicubic resize of the *tensor* so that its longest side is 224, then zero padding to a centred
224 × 224 square), then normalisation with the OpenAI mean and std. :class:`HPSv2Transform` does exactly that.

The model is the ``hpsv2:ARCH:CHECKPOINT`` model family (registered here), one shared embedder per checkpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.hub import resolve_weight_file
from ..encoders.registry import WEIGHT_FILE, parse_model_option, register_model_loader
from ..encoders.spec import ModelSpec
from ..encoders.weights import read_weights
from ..errors import ModelLoadError, UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot

HUB_REPO = "xswu/HPSv2"
FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
DEFAULT_ARCH = "ViT-H-14"
PREFIX = "hpsv2:"
#: the OpenAI CLIP mean and std, OpenCLIP's defaults for ViT-H-14 laion2b_s32b_b79k (HPSv2's preprocess_val)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
RECIPE = ("hps = cos(image, prompt): OpenCLIP ARCH with the checkpoint's ['state_dict'] loaded strictly; "
          "encode_image / encode_text, each L2-normalised; prompts by open_clip.get_tokenizer(ARCH) (77 tokens, "
          "truncated keeping end-of-text); images by HPSv2's preprocess_val (light_augmentation=True): "
          "ToTensor, bicubic resize of the tensor so its longest side is the input size (antialias on), zero "
          "padding to a centred square, normalise with the OpenAI mean/std")
X100 = ("HPSv2's benchmark tables (README, evaluation.py) report 100 x the mean cosine: the summary's 'x100' "
        "holds that (mean and its CI times 100); hpsv2.score() itself returns the cosine, as the column does")


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
    from ..encoders.openclip import OpenCLIPEncoder

    class HPSv2Encoder(OpenCLIPEncoder):
        """OpenCLIP ARCH with an HPSv2 checkpoint loaded strictly, tokenised by OpenCLIP's tokenizer of ARCH,
        images preprocessed by :class:`HPSv2Transform`."""

        family = "hpsv2"

        def __init__(self, arch: str, checkpoint: str, *, spec: str) -> None:  # noqa: D107
            try:
                import open_clip
            except ImportError:
                raise UsageError(f"model '{spec}' needs OpenCLIP: pip install 'clipgauge[openclip]'") from None
            from ..encoders.hub import quiet_loading

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


def _parse(rest: str, text: str) -> ModelSpec:
    arch, sep, checkpoint = rest.partition(":")
    if not arch or not sep or not checkpoint.strip():
        raise ModelLoadError(f"bad HPSv2 spec '{text}': use hpsv2:ARCH:CHECKPOINT (an OpenCLIP architecture and "
                             f"a checkpoint file or hub file, e.g. hpsv2:{DEFAULT_ARCH}:{HUB_REPO}/{FILES['v2.1']})")
    return ModelSpec("hpsv2", text, arch=arch.strip(), pretrained=checkpoint.strip())


def load_hpsv2(spec: ModelSpec, **options: Any):
    """The encoder of an ``hpsv2:ARCH:CHECKPOINT`` spec."""
    return _encoder_class()(spec.arch or DEFAULT_ARCH, spec.pretrained or "", spec=spec.text)


register_model_loader(
    "hpsv2", load_hpsv2, prefix=PREFIX, parse=_parse,
    describe="an HPSv2 checkpoint ({'state_dict': …} of a whole OpenCLIP model) with HPSv2's preprocessing: "
             "hpsv2:ARCH:CHECKPOINT (file or hub file ORG/NAME/FILE; needs clipgauge[openclip])")


# ----------------------------------------------------------------------------------------------- the metrics
class HPSv2(Metric):
    name = "hpsv2"
    summary = "HPS v2.0: cosine of the HPSv2 OpenCLIP ViT-H-14 image and prompt embeddings (tables: x100)"
    version = "v2.0"
    column = "hpsv2"
    options = {"checkpoint": f"HPSv2 checkpoint: a file or a hub file ORG/NAME/FILE, either may follow hf: "
                             f"(default: {HUB_REPO}/{FILES['v2.0']})",
               "arch": f"OpenCLIP architecture of the checkpoint (default: {DEFAULT_ARCH}; not --model)"}
    model_options = {"checkpoint": WEIGHT_FILE}
    inherits = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.checkpoint = str(self.config.get("checkpoint") or f"{HUB_REPO}/{FILES[self.version]}").strip()
        self.arch = str(self.config.get("arch") or DEFAULT_ARCH).strip()
        if ":" in self.arch:
            raise UsageError(f"metric '{self.name}': arch '{self.arch}' is not an OpenCLIP architecture name")
        self.spec = hpsv2_spec(self.checkpoint, self.arch)
        self._image = Need("image_embedding", self.spec)
        self._text = Need("text_embedding", self.spec)
        self._file: dict[str, Any] | None = None

    def needs(self) -> list[Need]:
        return [self._image, self._text]

    def columns(self) -> list[Column]:
        return [Column(self.column, description=f"HPS {self.version}: cosine of the L2-normalised image and prompt "
                       f"embeddings of the HPSv2 model (hpsv2.score()); HPSv2's tables report 100 x the mean; "
                       f"compare only scores of the same version", range=(-1.0, 1.0), unit="cosine")]

    def setup(self, context: Any) -> None:
        """Hash the checkpoint the shared model was loaded from."""
        from ..hashing import file_sha256

        encoder = context.embedder(self.spec).encoder
        path = Path(encoder.checkpoint_path)
        self._file = {"file": str(path), "sha256": file_sha256(path), **encoder.checkpoint_source,
                      "given": self.checkpoint}

    def compute(self, batch: MetricBatch) -> MetricOutput:
        cosine = unit_vectors_dot(batch.values[self._image], batch.values[self._text])
        return MetricOutput({self.column: cosine})

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """n, mean, CI… of the cosines, and ``x100``: the mean and CI times 100, as the HPSv2 tables print them."""
        from ..stats.summary import describe

        stats = describe(values[self.column], confidence=confidence)
        x100 = {k: (None if stats.get(k) is None else 100.0 * stats[k]) for k in ("mean", "ci_low", "ci_high")}
        return {self.column: {**stats, "x100": x100, "version": self.version, "arch": self.arch,
                              "checkpoint": self.checkpoint}}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "version": self.version, "arch": self.arch, "spec": self.spec,
                "checkpoint": self._file, "recipe": RECIPE, "x100": X100,
                "warning": "HPS v2.0 and v2.1 scores cannot be compared with each other",
                "paper": "Wu et al. 2023, Human Preference Score v2: A Solid Benchmark for Evaluating Human "
                         "Preferences of Text-to-Image Synthesis"}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "version": self.version, "arch": self.arch,
                "checkpoint_sha256": (self._file or {}).get("sha256")}


class HPSv21(HPSv2):
    name = "hpsv21"
    summary = "HPS v2.1: cosine of the HPSv2.1 OpenCLIP ViT-H-14 image and prompt embeddings (tables: x100)"
    version = "v2.1"
    column = "hpsv21"
    options = {**HPSv2.options, "checkpoint": f"HPSv2.1 checkpoint: a file or a hub file ORG/NAME/FILE, either "
                                              f"may follow hf: (default: {HUB_REPO}/{FILES['v2.1']})"}

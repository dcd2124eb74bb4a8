"""``Reward``: a metric of ``clipgauge score`` as a frozen torch module with gradients to the images.

``load_reward("aesthetic")`` builds the very metric ``--metric aesthetic`` builds (same option names, same
defaults, same model loaders and files), then runs its preprocessing in torch (:mod:`.preprocess`), the model's
own forward, and the metric's arithmetic in torch (:mod:`.heads`). Where an image needs no resize the result
equals ``clipgauge score`` to float rounding; where it does, within the bounds measured in docs/rewards.md.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UsageError
from .heads import RewardHead, head_builder
from .preprocess import torch_preprocess

#: distinct prompts whose embeddings a reward keeps (oldest dropped first)
MAX_CACHED_PROMPTS = 100_000


class Reward(torch.nn.Module):
    """A metric of one image and its prompt, differentiable with respect to the image.

    ``reward(images, prompts)``: *images* a float tensor ``(B, 3, H, W)`` with values in ``value_range``
    (``(0, 1)`` by default; ``(-1, 1)`` for a VAE decoder's output), *prompts* ``B`` strings (or one for all;
    ignored by image-only metrics: ``aesthetic``, ``clip_iqa``). Returns ``(B,)`` in the metric's own column
    scale (:attr:`column`, :attr:`unit`), float32 (float64 for float64 images). The weights are frozen and stay
    in eval mode (``train()`` leaves them so); gradients reach only the images.
    """

    def __init__(self, metric: Any, encoder: Any, head: RewardHead, *,
                 value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise UsageError(f"value_range must be (low, high) with high > low, not {value_range!r}")
        self.value_range = (low, high)
        self.metric_spec = metric
        self.metric = str(getattr(metric, "key", None) or metric.name)
        self.encoder = encoder
        self.model = encoder.module  # registered: .to(), .parameters() and state_dict() see it
        self.preprocess = torch_preprocess(encoder)
        self.head = head
        self._texts: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._blocks: list[tuple[torch.nn.Module, Any]] = []
        self.requires_grad_(False)
        super().train(False)

    # ----------------------------------------------------------------- what it returns
    @property
    def column(self) -> str:
        """The result column of ``clipgauge score --metric METRIC`` that :meth:`forward` equals."""
        return self.head.primary or self.head.columns[0]

    @property
    def unit(self) -> str:
        return self.head.unit

    @property
    def higher_is_better(self) -> bool:
        return self.head.higher_is_better

    @property
    def model_spec(self) -> str:
        """The model spec the metric's model was loaded from."""
        return str(self.encoder.spec)

    def eval_key(self, prefix: str = "clip", scale: str = "cosine") -> str | None:
        """The key :class:`~clipgauge.track.CLIPTracker` logs this score's evaluation mean under (``clip/mean``
        for the clip reward at the tracker's scale, ``aesthetic/mean``…), or None when the tracker's scale differs."""
        if self.metric_spec.name == "clip":
            return f"{prefix}/mean" if getattr(self.head, "scale", "cosine") == scale else None
        return f"{self.column}/mean"

    # ----------------------------------------------------------------- the module
    def train(self, mode: bool = True) -> Reward:
        """Kept in eval mode whatever *mode* (a parent's ``.train()`` must not turn dropout on)."""
        return super().train(False)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Reward:
        self._texts.clear()  # cached prompt embeddings are on the old device / dtype
        return super()._apply(fn, *args, **kwargs)

    def _param(self) -> torch.Tensor:
        return next(self.model.parameters())

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | str | None = None) -> torch.Tensor:
        """The metric's value per image: ``(B,)``, differentiable with respect to *images*."""
        return self.scores(images, prompts)[self.column]

    def scores(self, images: torch.Tensor, prompts: Sequence[str] | str | None = None) -> dict[str, torch.Tensor]:
        """Every column the metric writes (``clip``: ``score`` and ``cosine``; ``clip_iqa``: one per pair), each
        ``(B,)``."""
        image = self.image_embeddings(images)
        text = self.text_embeddings(self._prompts(prompts, len(image))) if self.head.needs_text else None
        if text is not None:
            text = text.to(image.dtype)
        return self.head(image, text)

    # ----------------------------------------------------------------- embeddings
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``(B, D)`` (float32, float64 for float64 images), with gradients."""
        x = self._check_images(images)
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            x = (x - low) / (high - low)
        pixels = self.preprocess(x)
        param = self._param()
        if not torch.is_autocast_enabled(pixels.device.type):
            pixels = pixels.to(param.dtype)
        feats = self._encode_images()(pixels.to(param.device))
        feats = feats.to(torch.promote_types(x.dtype, torch.float32))
        return feats / feats.norm(dim=-1, keepdim=True)

    def _encode_images(self) -> Any:
        """The encoder's image forward: inside :func:`torch.compile` the bare one, as dynamo cannot trace the
        genuine-attention guard's lock (a compiled graph runs the attention function present when it was traced)."""
        method = self.encoder.encode_images
        bare = getattr(method, "__wrapped__", None)  # the function with_genuine_attention wrapped
        if torch.compiler.is_compiling() and bare is not None:
            return bare.__get__(self.encoder)
        return method

    @torch.compiler.disable
    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str] | str) -> torch.Tensor:
        """L2-normalised prompt embeddings ``(N, D)``, float32 on the model's device, without gradients; each
        distinct prompt is encoded once and cached (tokenised and truncated exactly as ``clipgauge score`` does;
        a prompt longer than the text context warns once)."""
        texts = [prompts] if isinstance(prompts, str) else [str(p) for p in prompts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if todo:
            encoder = self.encoder
            tokens = encoder.tokenize(todo, [None] * len(todo)) if encoder.needs_language else encoder.tokenize(todo)
            long = [t for t, cut in zip(todo, tokens.truncated) if cut]
            if long:
                warnings.warn(f"{len(long)} prompt(s) longer than the text context of '{self.model_spec}' "
                              f"({encoder.context_length} tokens) were truncated, keeping the end-of-text token, as "
                              f"clipgauge score does (its 'truncated' column); first: {long[0][:80]!r}", stacklevel=2)
            device = self._param().device
            inputs = {k: v.to(device) for k, v in tokens.inputs.items()}
            feats = encoder.encode_texts(inputs)
            dtype = torch.float64 if self._param().dtype == torch.float64 else torch.float32
            feats = feats.to(dtype)
            feats = feats / feats.norm(dim=-1, keepdim=True)
            for text, row in zip(todo, feats):
                self._texts[text] = row
            while len(self._texts) > MAX_CACHED_PROMPTS:
                self._texts.popitem(last=False)
        if not texts:
            return torch.zeros((0, 0), device=self._param().device)
        return torch.stack([self._texts[t] for t in texts])

    # ----------------------------------------------------------------- memory
    def gradient_checkpointing(self, enable: bool = True) -> Reward:
        """Recompute the image tower's transformer blocks in the backward pass instead of keeping their
        activations (``torch.utils.checkpoint``, non-reentrant): less memory, one more forward of the blocks.
        Works in eval mode and under autocast; the recomputation also runs with torch's own attention. The
        memory saved is measured in docs/rewards.md."""
        from torch.utils.checkpoint import checkpoint

        from ..encoders.attention import genuine_attention

        for block, original in self._blocks:
            block.forward = original
        self._blocks = []
        if not enable:
            return self
        for block in _image_blocks(self.model):
            original = block.forward

            def run(*args: Any, _forward: Any = original, **kwargs: Any) -> Any:
                if not torch.is_grad_enabled():
                    return _forward(*args, **kwargs)

                def genuine(*a: Any, **k: Any) -> Any:
                    with genuine_attention():
                        return _forward(*a, **k)

                return checkpoint(genuine, *args, use_reentrant=False, **kwargs)

            block.forward = run
            self._blocks.append((block, original))
        return self

    # ----------------------------------------------------------------- checks
    def _check_images(self, images: Any) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise UsageError(f"images must be a torch tensor (B, 3, H, W), not {type(images).__name__} "
                             f"(clipgauge.rewards.as_image_batch converts arrays, uint8 and PIL images)")
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"images must be (B, 3, H, W) with 3 colour channels, got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise UsageError(f"images must be floating point with values in {self.value_range}, got {images.dtype} "
                             f"(divide uint8 images by 255)")
        return images

    @staticmethod
    def _prompts(prompts: Sequence[str] | str | None, n: int) -> list[str]:
        if prompts is None:
            raise UsageError("this reward reads the prompt: pass one prompt per image (or one for all)")
        if isinstance(prompts, str):
            return [prompts] * n
        prompts = list(prompts)
        if len(prompts) != n:
            raise UsageError(f"{n} images but {len(prompts)} prompts: pass one prompt per image (or one for all)")
        return prompts

    def describe(self) -> dict[str, Any]:
        """What the reward computes, for provenance: metric, options, model, column, unit, preprocessing."""
        return {"metric": self.metric, "options": dict(self.metric_spec.config), "model": self.model_spec,
                "column": self.column, "unit": self.unit, "higher_is_better": self.higher_is_better,
                "value_range": list(self.value_range), "preprocessing": self.preprocess.describe()}

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, model={self.model_spec!r}, column={self.column!r}"


def _image_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a model's image tower: the longest ``ModuleList`` under ``vision_model``
    (transformers) or ``visual`` (OpenCLIP)."""
    towers = [m for name, m in module.named_modules() if name.split(".")[-1] in ("vision_model", "visual")]
    if not towers:
        raise UsageError("gradient checkpointing: no image tower (vision_model or visual) found in this model")
    lists = [m for m in towers[0].modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise UsageError("gradient checkpointing: the image tower has no list of transformer blocks")
    return list(max(lists, key=len))


def load_reward(metric: str, *, model: str | None = None, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, value_range: tuple[float, float] = (0.0, 1.0),
                trust_remote_code: bool = False, **options: Any) -> Reward:
    """The metric *metric* as a :class:`Reward` on *device* with weights in *dtype*.

    *metric*: ``clip``, ``aesthetic``, ``demo-aesthetic``, ``pickscore``, ``hpsv2``, ``hpsv21``, ``clip_iqa`` (or a
    plugin's, :func:`~clipgauge.rewards.register_reward_head`). *model*: the metric's ``model`` option (any model
    spec ``--model`` takes; for ``hpsv2``/``hpsv21``, which have none, the ``checkpoint``); None: the metric's
    default. *options*: the metric's other options, named as ``--metric NAME:KEY=VALUE`` names them (``scale``,
    ``head``, ``processor``, ``prompts``, ``arch``…). One-line :class:`~clipgauge.errors.UsageError` /
    :class:`~clipgauge.errors.ModelLoadError` for anything wrong.
    """
    from ..encoders import resolve_encoder
    from ..metrics.registry import metric_class

    cls = metric_class(metric)
    builder = head_builder(cls.name)
    if model is not None:
        key = "model" if "model" in cls.options else "checkpoint" if "checkpoint" in cls.options else None
        if key is None:
            raise UsageError(f"metric '{metric}' takes no model")
        options = {**options, key: model}
    built = cls(**options)
    encoder, head = builder(built, lambda spec: resolve_encoder(spec, trust_remote_code=trust_remote_code))
    reward = Reward(built, encoder, head, value_range=value_range)
    return reward.to(device=torch.device(device), dtype=dtype)

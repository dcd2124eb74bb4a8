"""What each metric computes from the embeddings, in torch: one small head per metric, and their registry.

A :class:`RewardHead` takes L2-normalised image embeddings ``(B, D)`` (and the prompts' ``(B, D)`` where the
metric reads the prompt) and returns every column ``clipgauge score --metric NAME`` writes for it, as tensors
that carry the gradient, in the same units:

==================  ==========================  ===============================================================
metric              column(s)                   value
==================  ==========================  ===============================================================
``clip``            ``score`` (and ``cosine``)  cos(image, prompt) in ``scale``: cosine [-1, 1], torchmetrics
                                                100 × cos, clip-s 2.5 × max(cos, 0), angle degrees (lower is
                                                better)
``pickscore``       ``pickscore``               ``logit_scale.exp()`` × cos (about 18–24 for PickScore v1)
``hpsv2/hpsv21``    ``hpsv2`` / ``hpsv21``      cos in [-1, 1] (HPSv2's tables print 100 × the mean)
``aesthetic``       ``aesthetic``               the LAION head on the normalised image embedding (about 1–10)
``demo-aesthetic``  ``demo_aesthetic``          the demo head (not a LAION score)
``clip_iqa``        ``clip_iqa[_PAIR]``         softmax(100 × [cos(img, pos), cos(img, neg)])[0], in [0, 1]
==================  ==========================  ===============================================================

A metric of a plugin becomes a reward with one function and :func:`register_reward_head`: the function gets the
built :class:`~clipgauge.metrics.Metric` and the loaded :class:`~clipgauge.encoders.Encoder` and returns
``(model spec, head)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import UsageError

#: a cosine is clamped this far inside [-1, 1] before arccos, so the angle's gradient stays finite
ANGLE_EPS = 1e-6


class RewardHead(torch.nn.Module):
    """Columns of one metric from normalised embeddings. Subclasses set :attr:`columns` (the first, or
    :attr:`primary`, is what the reward returns) and :attr:`needs_text`, and implement :meth:`forward`."""

    #: the result columns, in order
    columns: tuple[str, ...] = ()
    #: the column a :class:`~clipgauge.rewards.Reward` returns (default: the first)
    primary: str = ""
    #: whether the metric reads the prompt (False: image-only, prompts may be None)
    needs_text: bool = True
    #: what a value is (for docs and the tracker): ``cosine``, ``probability``…
    unit: str = ""
    #: whether a higher value is better (False only for the clip angle)
    higher_is_better: bool = True

    def forward(self, image: torch.Tensor, text: torch.Tensor | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def _cosine(image: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
    if text is None:
        raise UsageError("this reward reads the prompt: pass prompts")
    return (image * text).sum(dim=-1)


class ClipHead(RewardHead):
    """``clip``: the cosine in the metric's ``scale`` (column ``score``) and the raw ``cosine``."""

    columns = ("score", "cosine")
    primary = "score"

    def __init__(self, scale: str = "cosine") -> None:
        super().__init__()
        self.scale = scale
        self.unit = {"cosine": "cosine", "torchmetrics": "100 x cosine", "clip-s": "2.5 x max(cosine, 0)",
                     "angle": "degrees"}[scale]
        self.higher_is_better = scale != "angle"

    def forward(self, image: torch.Tensor, text: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cos = _cosine(image, text)
        if self.scale == "cosine":
            score = cos
        elif self.scale == "torchmetrics":
            score = 100.0 * cos
        elif self.scale == "clip-s":
            score = 2.5 * torch.relu(cos)
        else:
            score = torch.rad2deg(torch.arccos(cos.clamp(-1.0 + ANGLE_EPS, 1.0 - ANGLE_EPS)))
        return {"score": score, "cosine": cos}


class ScaledCosineHead(RewardHead):
    """A cosine times a constant, in one named column (PickScore: ``logit_scale.exp()``; HPSv2: 1)."""

    def __init__(self, column: str, scale: float = 1.0, unit: str = "cosine") -> None:
        super().__init__()
        self.columns, self.primary, self.unit, self.scale = (column,), column, unit, float(scale)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cos = _cosine(image, text)
        return {self.primary: cos * self.scale if self.scale != 1.0 else cos}


class AestheticMLP(RewardHead):
    """A LAION aesthetic head (:class:`~clipgauge.metrics.aesthetic_head.AestheticHead`: v1 linear, v2 linear or
    v2 ReLU) as frozen torch layers: ``x = x @ W.T + b`` per layer, ReLU where the format has one."""

    needs_text = False
    unit = "aesthetic score"

    def __init__(self, head: Any, column: str) -> None:
        super().__init__()
        self.columns, self.primary = (column,), column
        self.layers = torch.nn.ModuleList()
        for weight, bias in zip(head.weights, head.biases):
            layer = torch.nn.Linear(int(weight.shape[1]), int(weight.shape[0]))
            with torch.no_grad():
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
            self.layers.append(layer)
        self.relu = tuple(head.relu)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = image.to(self.layers[0].weight.dtype)
        for layer, relu in zip(self.layers, self.relu):
            x = layer(x)
            if relu:
                x = torch.relu(x)
        return {self.primary: x[:, 0].to(image.dtype)}


class ClipIQAHead(RewardHead):
    """CLIP-IQA: per antonym pair, ``sigmoid(100 × (cos(img, positive) − cos(img, negative)))`` — the softmax of
    the two scaled cosines — with the pair prompts embedded once (``anchors``, (2P, D), positive first)."""

    needs_text = False
    unit = "probability"

    def __init__(self, anchors: torch.Tensor, columns: list[str], primary: str, scale: float) -> None:
        super().__init__()
        self.columns, self.primary, self.scale = tuple(columns), primary, float(scale)
        self.register_buffer("anchors", anchors)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cos = image @ self.anchors.to(image.dtype).T  # (B, 2P)
        probs = torch.sigmoid(self.scale * (cos[:, 0::2] - cos[:, 1::2]))
        return {name: probs[:, j] for j, name in enumerate(self.columns)}


# ----------------------------------------------------------------------------------------------- the registry
#: builder(metric, load_encoder) -> (encoder, head); load_encoder(spec) loads a model spec as the scorer does
HeadBuilder = Callable[[Any, Callable[[str], Any]], tuple[Any, RewardHead]]
_BUILDERS: dict[str, HeadBuilder] = {}


def register_reward_head(metric: str, builder: HeadBuilder | None = None, *, replace: bool = False) -> Any:
    """Make ``load_reward(metric)`` work: *builder(metric_instance, load_encoder)* returns ``(encoder, head)``.
    Usable as a decorator (``@register_reward_head("name")``)."""
    def add(fn: HeadBuilder) -> HeadBuilder:
        if metric in _BUILDERS and not replace:
            raise ValueError(f"a reward head for metric '{metric}' is already registered (pass replace=True)")
        _BUILDERS[metric] = fn
        return fn

    return add if builder is None else add(builder)


def head_builder(metric: str) -> HeadBuilder:
    """The builder registered for *metric*; :class:`UsageError` naming those that have one."""
    if metric not in _BUILDERS:
        raise UsageError(f"metric '{metric}' has no differentiable reward (rewards: {', '.join(reward_metrics())}); "
                         f"it is not a function of one image and its prompt, or no head is registered for it")
    return _BUILDERS[metric]


def reward_metrics() -> list[str]:
    """The metrics :func:`~clipgauge.rewards.load_reward` takes."""
    return sorted(_BUILDERS)


@register_reward_head("clip")
def _clip(metric: Any, load: Callable[[str], Any]) -> tuple[Any, RewardHead]:
    return load(metric.model), ClipHead(metric.scale)


@register_reward_head("pickscore")
def _pickscore(metric: Any, load: Callable[[str], Any]) -> tuple[Any, RewardHead]:
    encoder = load(metric.spec)
    scale = float(encoder.module.logit_scale.detach().float().cpu().exp())
    return encoder, ScaledCosineHead("pickscore", scale, unit="logit_scale.exp() x cosine")


def _hps(metric: Any, load: Callable[[str], Any]) -> tuple[Any, RewardHead]:
    return load(metric.spec), ScaledCosineHead(metric.column)


register_reward_head("hpsv2", _hps)
register_reward_head("hpsv21", _hps)


def _aesthetic(metric: Any, load: Callable[[str], Any]) -> tuple[Any, RewardHead]:
    encoder = load(metric.model)
    return encoder, AestheticMLP(metric.head(), metric.column)


register_reward_head("aesthetic", _aesthetic)
register_reward_head("demo-aesthetic", _aesthetic)


@register_reward_head("clip_iqa")
def _clip_iqa(metric: Any, load: Callable[[str], Any]) -> tuple[Any, RewardHead]:
    from ..metrics.clip_iqa import LOGIT_SCALE, column_name, embed_texts

    encoder = load(metric.model)
    anchors = torch.from_numpy(embed_texts(encoder, metric.texts))  # as the metric embeds them (on CPU, fp32)
    columns = [column_name(name) for name, _, _ in metric.pairs]
    primary = metric.primary()
    return encoder, ClipIQAHead(anchors, columns, primary.name if primary is not None else columns[0], LOGIT_SCALE)


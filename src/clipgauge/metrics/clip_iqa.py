"""``clip_iqa``: CLIP-IQA (Wang, Chan & Loy, AAAI 2023), zero-shot image quality from antonym prompt pairs.

For each pair (positive, negative), e.g. ``("Good photo.", "Bad photo.")``::

    p = softmax(100 × [cos(image, positive), cos(image, negative)])[0]
      = 1 / (1 + exp(-100 × (cos(image, positive) − cos(image, negative))))

a probability in [0, 1]: how much more the image looks like the positive prompt than the negative one. This is
torchmetrics' ``CLIPImageQualityAssessment`` recipe: the fixed scale 100 (OpenAI CLIP's learned logit scale is
clamped at exactly 100), L2-normalised image and prompt embeddings, the prompts encoded alone (no prompt prefix,
no template), padded to the longest pair prompt with an attention mask.

The backbone is any CLIP model clipgauge loads (``model=``, by default the run's ``--model``), so a run of
``clip`` and ``clip_iqa`` on one model shares its image embeddings. Images get the model's own preprocessing
(for transformers models: ``CLIPImageProcessorPil``, resize + centre crop). The paper's own setting, which is
torchmetrics' default ``model_name_or_path="clip_iqa"`` (OpenAI's ResNet-50 at the image's native resolution
with the attention pool's positional embedding dropped) is *not* reproduced: see docs/metrics/clip_iqa.md.

Columns: ``clip_iqa`` for the ``quality`` pair and ``clip_iqa_<name>`` for every other pair, float64 in [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need

#: The built-in antonym pairs: the paper's (its quality and abstract-perception attributes) under the names
#: torchmetrics' ``_PROMPTS`` gives them (``colorfullness`` spelt as there; ``colorfulness`` is accepted too).
PROMPTS: dict[str, tuple[str, str]] = {
    "quality": ("Good photo.", "Bad photo."),
    "brightness": ("Bright photo.", "Dark photo."),
    "noisiness": ("Clean photo.", "Noisy photo."),
    "colorfullness": ("Colorful photo.", "Dull photo."),
    "sharpness": ("Sharp photo.", "Blurry photo."),
    "contrast": ("High contrast photo.", "Low contrast photo."),
    "complexity": ("Complex photo.", "Simple photo."),
    "natural": ("Natural photo.", "Synthetic photo."),
    "happy": ("Happy photo.", "Sad photo."),
    "scary": ("Scary photo.", "Peaceful photo."),
    "new": ("New photo.", "Old photo."),
    "warm": ("Warm photo.", "Cold photo."),
    "real": ("Real photo.", "Abstract photo."),
    "beautiful": ("Beautiful photo.", "Ugly photo."),
    "lonely": ("Lonely photo.", "Sociable photo."),
    "relaxing": ("Relaxing photo.", "Stressful photo."),
}
_ALIASES = {"colorfulness": "colorfullness"}

#: Built-in pairs whose positive prompt is the desirable pole (higher is better). The others describe a
#: property (brighter, warmer, more complex, scarier…) that is neither good nor bad by itself: their columns
#: declare ``higher_is_better=None``. A user pair is taken to name the wanted pole first (True).
GOOD_POLE = ("quality", "noisiness", "sharpness", "beautiful")

#: The logit scale of the recipe (torchmetrics and piq; the learned scale of OpenAI CLIP, clamped at 100)
LOGIT_SCALE = 100.0

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NAMED_PAIR = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*:(.*)$", re.S)


def parse_prompts(value: Any) -> list[tuple[str, str, str]]:
    """The ``(name, positive, negative)`` pairs of a ``prompts`` option.

    A string is a list of items separated by ``|``. An item holding a ``/`` is a user pair
    ``[NAME:]POSITIVE/NEGATIVE`` (its prompts may hold commas; unnamed pairs are ``user_defined_0``, ``_1``…,
    as in torchmetrics); any other item is one or more built-in names separated by commas. So
    ``quality,sharpness`` and ``quality|crisp:Crisp, clean photo./Muddy photo.`` both work.

    A sequence (the torchmetrics form) holds built-in names, ``"POSITIVE/NEGATIVE"`` strings or
    ``(positive, negative)`` tuples. :class:`UsageError` for unknown names, malformed pairs or repeated names.
    """
    items: list[Any] = []
    if isinstance(value, str):
        for item in value.split("|"):
            if "/" in item:
                items.append(item)
            else:
                items.extend(item.split(","))
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise UsageError(f"clip_iqa prompts must be text or a list of pairs, not {type(value).__name__}")
    pairs: list[tuple[str, str, str]] = []
    user = 0
    for item in items:
        if isinstance(item, (tuple, list)):
            if len(item) != 2 or not all(isinstance(t, str) and t.strip() for t in item):
                raise UsageError(f"clip_iqa prompt pair {item!r} must be two non-empty texts (positive, negative)")
            name, pos, neg = f"user_defined_{user}", str(item[0]).strip(), str(item[1]).strip()
            user += 1
        elif not isinstance(item, str):
            raise UsageError(f"clip_iqa prompt {item!r} is neither a built-in name nor a pair")
        elif "/" in item:
            named = _NAMED_PAIR.match(item)
            name, text = (named.group(1), named.group(2)) if named else (f"user_defined_{user}", item)
            user += 0 if named else 1
            parts = text.split("/")
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise UsageError(f"clip_iqa prompt pair '{item.strip()}' must be [NAME:]POSITIVE/NEGATIVE "
                                 "with one '/' and two non-empty prompts")
            pos, neg = parts[0].strip(), parts[1].strip()
        else:
            key = item.strip()
            if not key:
                continue
            key = _ALIASES.get(key, key)
            if key not in PROMPTS:
                raise UsageError(f"unknown clip_iqa prompt pair '{key}' (built-in: {', '.join(PROMPTS)}; "
                                 "or give your own as POSITIVE/NEGATIVE)")
            name, (pos, neg) = key, PROMPTS[key]
        if not _NAME.match(name):
            raise UsageError(f"clip_iqa pair name '{name}': use lower-case letters, digits and '_'")
        if any(name == p[0] for p in pairs):
            raise UsageError(f"clip_iqa prompt pair '{name}' given twice")
        pairs.append((name, pos, neg))
    if not pairs:
        raise UsageError("clip_iqa needs at least one prompt pair")
    return pairs


def column_name(pair: str) -> str:
    """The column of pair *pair*: ``clip_iqa`` for ``quality``, else ``clip_iqa_<pair>``."""
    return "clip_iqa" if pair == "quality" else f"clip_iqa_{pair}"


def pair_probabilities(image: np.ndarray, anchors: np.ndarray, scale: float = LOGIT_SCALE) -> np.ndarray:
    """CLIP-IQA probabilities, float64 (N, P) in [0, 1], from L2-normalised image embeddings (N, D) and the
    L2-normalised prompt embeddings (2P, D) in order positive₀, negative₀, positive₁, …

    softmax over each pair of ``scale × cosine``, taken as the logistic function of the scaled difference
    (the same number, without overflow). NaN rows (images that failed) give NaN.
    """
    cosine = image.astype(np.float64) @ anchors.astype(np.float64).T  # (N, 2P)
    diff = scale * (cosine[:, 0::2] - cosine[:, 1::2])
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-diff))


class ClipIQA(Metric):
    name = "clip_iqa"
    summary = "CLIP-IQA: softmax(100 x cosine) of antonym prompts ('Good photo.' vs 'Bad photo.'), in [0, 1]"
    options = {
        "prompts": f"pairs (default quality): built-in names joined by ',' ({', '.join(PROMPTS)}) and/or your "
                   "own [NAME:]POSITIVE/NEGATIVE, items joined by '|'",
        "model": "CLIP model spec (default: --model)",
    }
    inherits = ("model",)
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        prompts = self.config.get("prompts")
        self.pairs = parse_prompts(prompts if prompts not in (None, "") else "quality")
        self._image = Need("image_embedding", self.model)
        self._anchors: np.ndarray | None = None

    @property
    def texts(self) -> list[str]:
        """Every prompt in the order the probabilities take them: positive₀, negative₀, positive₁, …"""
        return [t for _, pos, neg in self.pairs for t in (pos, neg)]

    def needs(self) -> list[Need]:
        return [self._image]

    def columns(self) -> list[Column]:
        out = []
        for name, pos, neg in self.pairs:
            better = True if name not in PROMPTS else (True if name in GOOD_POLE else None)
            out.append(Column(column_name(name), range=(0.0, 1.0), unit="probability", higher_is_better=better,
                              description=f"CLIP-IQA '{name}': softmax(100 x cosine) of '{pos}' against '{neg}'"))
        return out

    def setup(self, context: Any) -> None:
        """Embed the pair prompts once with the backbone (its tokenizer and text tower, in the run's precision,
        without the run's prompt prefix)."""
        self._anchors = embed_prompts(context.embedder(self.model), self.texts)

    def compute(self, batch: MetricBatch) -> MetricOutput:
        if self._anchors is None:
            raise RuntimeError("clip_iqa: setup() was not called")
        probs = pair_probabilities(batch.values[self._image], self._anchors)
        return MetricOutput({column_name(name): probs[:, j] for j, (name, _, _) in enumerate(self.pairs)})

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "logit_scale": LOGIT_SCALE,
                "pairs": {column_name(n): {"positive": p, "negative": q} for n, p, q in self.pairs},
                "definition": "softmax(100 * [cos(image, positive), cos(image, negative)])[0], L2-normalised "
                              "CLIP embeddings, prompts without prefix (Wang et al. 2023; torchmetrics "
                              "CLIPImageQualityAssessment with a transformers CLIP)"}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "pairs": [list(p) for p in self.pairs], "logit_scale": LOGIT_SCALE}


def embed_prompts(scorer: Any, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 (len(texts), D) embeddings of *texts* by a :class:`~clipgauge.Scorer`'s encoder,
    exactly as the scorer embeds prompts (same batching by token length, device and precision) but without its
    ``prompt_prefix``: CLIP-IQA's prompts are the paper's text, not the user's captions."""
    return embed_texts(scorer.encoder, texts, batch_size=int(scorer.batch_size), device=scorer.device,
                       precision=scorer.precision)


def embed_texts(encoder: Any, texts: list[str], *, batch_size: int = 32, device: Any = "cpu",
                precision: str = "fp32") -> np.ndarray:
    """:func:`embed_prompts` for a bare :class:`~clipgauge.encoders.Encoder` on *device* (its module already
    there) at *precision*: L2-normalised float32 (len(texts), D), prompts batched by token length."""
    import torch

    from ..scoring.device import autocast
    from ..scoring.text_batches import length_batches

    device = torch.device(device)
    tokens = encoder.tokenize(list(texts))
    out = np.zeros((len(texts), 0), dtype=np.float32)
    for idx, inputs in length_batches(tokens, max(1, int(batch_size))):
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.inference_mode(), autocast(precision, device):
            feats = encoder.encode_texts(inputs).float()
        feats = (feats / feats.norm(dim=-1, keepdim=True)).cpu().numpy()
        if out.shape[1] == 0:
            out = np.zeros((len(texts), feats.shape[1]), dtype=np.float32)
        out[idx] = feats
    return out

"""``zeroshot``: zero-shot classification of each image against a list of labels (Radford et al. 2021, §3.1.4).

Each label is embedded under every prompt template (``"a photo of a {}."``…; ``imagenet`` = the paper's 80),
the L2-normalised embeddings are averaged over templates and normalised again (the paper's ``zeroshot_classifier``),
once per run in :meth:`ZeroShot.setup`. Per image::

    probability(label) = softmax over labels of logit_scale × cos(image, label classifier)

with ``logit_scale`` the model's own ``logit_scale.exp()`` (100 for OpenAI CLIP), recorded in the provenance.
Needs only the row's image embedding: the input needs no prompt.

Columns: ``label`` (top-1), ``label_index`` (its position in the label list), ``probability`` (its probability, in
[0, 1]), ``top_labels`` (JSON list of ``{"label", "probability"}``, the ``top_k`` most probable); with a
ground-truth column (``truth=``) also ``true_label``, ``true_index``, ``true_rank`` (1 = top), ``true_probability``
and ``correct`` (top-1). The summary's ``classification`` holds accuracy (top-1, top-5), mean per-class recall and
the confusion table (:func:`clipgauge.stats.classification.evaluate`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import ANY_MODEL
from ..errors import UsageError
from .base import Column, Metric, MetricBatch, MetricOutput, Need
from .imagenet_templates import IMAGENET_TEMPLATES

#: the template used when none is given: the label as written
DEFAULT_TEMPLATE = "{}"
#: the logit scale used when a model has none (OpenAI CLIP's, clamped at 100)
FALLBACK_LOGIT_SCALE = 100.0
RECIPE = ("classifier[label] = normalise(mean over templates of normalise(text_embedding(template.format(label)))); "
          "probability = softmax over labels of logit_scale.exp() * cos(image_embedding, classifier[label]) "
          "(Radford et al. 2021, zeroshot_classifier of the CLIP ImageNet notebook)")


def parse_labels(value: Any) -> list[str]:
    """Labels from a list or a comma-separated string: stripped, in order. :class:`UsageError` when there are
    none or one is repeated."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    labels = [str(x).strip() for x in items if str(x).strip()]
    if not labels:
        raise UsageError("no labels to classify into (give at least one label)")
    seen: set[str] = set()
    dupes = [x for x in labels if x in seen or seen.add(x)]
    if dupes:
        raise UsageError(f"label '{dupes[0]}' is given twice")
    return labels


def parse_templates(value: Any) -> list[str]:
    """Templates from a list or a ``|``-separated string; ``imagenet`` stands for the 80 ImageNet templates. Each
    must hold ``{}`` (where the label goes). Default: ``["{}"]`` (the label as written)."""
    items = value.split("|") if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if text.lower() == "imagenet":
            out.extend(IMAGENET_TEMPLATES)
        elif "{}" not in text:
            raise UsageError(f"template '{text}' has no '{{}}' where the label goes (e.g. 'a photo of a {{}}.')")
        else:
            out.append(text)
    return out or [DEFAULT_TEMPLATE]


def fill(template: str, label: str) -> str:
    """*template* with *label* at every ``{}`` (other braces are kept as written)."""
    return template.replace("{}", label)


def model_logit_scale(scorer: Any) -> tuple[float, str]:
    """``(logit_scale.exp(), where it came from)`` of a loaded :class:`~clipgauge.Scorer`'s CLIP model."""
    import torch

    param = getattr(getattr(scorer.encoder, "module", None), "logit_scale", None)
    if param is None:
        return FALLBACK_LOGIT_SCALE, "the model has no logit_scale: 100 (OpenAI CLIP's) is used"
    with torch.no_grad():
        return float(torch.as_tensor(param).detach().float().cpu().exp()), "model.logit_scale.exp()"


class ZeroShot(Metric):
    name = "zeroshot"
    summary = "zero-shot classification: softmax over labels of logit_scale x cosine (label, probability, top-k)"
    options = {
        "labels": "the labels, comma-separated (or a list from Python)",
        "templates": "prompt templates with {} for the label, joined by '|'; 'imagenet' = the CLIP paper's 80 "
                     "(default: {}, the label as written)",
        "truth": "column with each row's true label: adds true_label, true_rank, correct and the accuracy summary",
        "top_k": "how many labels top_labels lists (default 5)",
        "model": "CLIP model spec (default: --model)",
    }
    inherits = ("model",)
    needs_text = ["image_embedding of the model"]
    columns_text = ["label", "label_index", "probability", "top_labels"]
    model_options = {"model": ANY_MODEL}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.model = str(self.config.get("model") or DEFAULT_MODEL)
        self.labels = parse_labels(self.config.get("labels"))
        self.templates = parse_templates(self.config.get("templates"))
        truth = self.config.get("truth")
        self.truth = str(truth) if truth not in (None, "") else None
        try:
            self.top_k = int(self.config.get("top_k") or 5)
        except (TypeError, ValueError):
            raise UsageError(f"zeroshot top_k must be a whole number, not {self.config.get('top_k')!r}") from None
        if self.top_k < 1:
            raise UsageError("zeroshot top_k must be >= 1")
        self._image = Need("image_embedding", self.model)
        self.classifier: np.ndarray | None = None
        self.logit_scale: float | None = None
        self.logit_scale_source = ""

    def needs(self) -> list[Need]:
        return [self._image]

    def columns(self) -> list[Column]:
        out = [
            Column("label", "string", "the most probable label (top-1)", higher_is_better=None, summarize=False),
            Column("label_index", "int64", "position of label in the label list (0-based)", higher_is_better=None,
                   summarize=False),
            Column("probability", description="softmax probability of the top-1 label over all labels",
                   range=(0.0, 1.0), unit="probability", higher_is_better=None),
            Column("top_labels", "string", f"JSON list of the {self.top_k} most probable labels with their "
                   "probabilities", higher_is_better=None, summarize=False),
        ]
        if self.truth is not None:
            out += [
                Column("true_label", "string", f"the ground truth (column '{self.truth}')", higher_is_better=None,
                       summarize=False),
                Column("true_index", "int64", "position of true_label in the label list", higher_is_better=None,
                       summarize=False),
                Column("true_rank", "int64", "rank of the true label among all labels (1 = top)",
                       range=(1.0, float(len(self.labels))), unit="rank", higher_is_better=False, summarize=False),
                Column("true_probability", description="softmax probability of the true label", range=(0.0, 1.0),
                       unit="probability", higher_is_better=True, summarize=False),
                Column("correct", "bool", "the top-1 label is the true label", higher_is_better=True,
                       summarize=False),
            ]
        return out

    def setup(self, context: Any) -> None:
        """Embed every label under every template once (the backbone's tokenizer and text tower, no prompt
        prefix), build the ensemble classifier, and read the model's logit scale."""
        from ..stats.classification import ensemble_classifier
        from .clip_iqa import embed_prompts

        scorer = context.embedder(self.model)
        texts = [fill(t, label) for label in self.labels for t in self.templates]
        self.classifier = ensemble_classifier(embed_prompts(scorer, texts), len(self.labels), len(self.templates))
        self.logit_scale, self.logit_scale_source = model_logit_scale(scorer)

    def compute(self, batch: MetricBatch) -> MetricOutput:
        from ..stats.classification import label_probabilities, ranking, true_ranks

        if self.classifier is None or self.logit_scale is None:
            raise RuntimeError("zeroshot: setup() was not called")
        probs = label_probabilities(batch.values[self._image], self.classifier, self.logit_scale)
        order = ranking(probs)
        has = ~np.isnan(probs).any(axis=1)
        k = min(self.top_k, len(self.labels))
        top = order[:, 0]
        cols: dict[str, Any] = {
            "label": [self.labels[j] if h else None for j, h in zip(top, has)],
            "label_index": [int(j) if h else None for j, h in zip(top, has)],
            "probability": np.where(has, probs[np.arange(len(probs)), top], np.nan),
            "top_labels": [json.dumps([{"label": self.labels[j], "probability": round(float(p[j]), 6)}
                                       for j in o[:k]]) if h else None for o, p, h in zip(order, probs, has)],
        }
        errors: list[str | None] | None = None
        if self.truth is not None:
            truth, errors = self._truth(batch.rows)
            ranks = true_ranks(probs, truth)
            known = (truth >= 0) & has
            cols["true_label"] = [self.labels[t] if t >= 0 else None for t in truth]
            cols["true_index"] = [int(t) if t >= 0 else None for t in truth]
            cols["true_rank"] = [int(r) if ok else None for r, ok in zip(ranks, known)]
            cols["true_probability"] = np.where(known, probs[np.arange(len(probs)), np.maximum(truth, 0)], np.nan)
            cols["correct"] = [bool(ok and r == 1) for r, ok in zip(ranks, known)]
        return MetricOutput(cols, errors)

    def _truth(self, rows: Sequence[Any]) -> tuple[np.ndarray, list[str | None]]:
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.full(len(rows), -1, dtype=np.int64)
        errors: list[str | None] = [None] * len(rows)
        for i, row in enumerate(rows):
            value = row.fields.get(self.truth)
            if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
                errors[i] = f"missing ground truth '{self.truth}'"
            elif str(value).strip() not in index:
                errors[i] = f"ground truth '{value}' is not one of the labels"
            else:
                out[i] = index[str(value).strip()]
        return out, errors

    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """``probability`` statistics and ``classification``: the labels, how often each was predicted, and with
        ground truth the accuracy, mean per-class recall and confusion table."""
        from ..stats.classification import evaluate
        from ..stats.summary import describe

        predicted = values["label_index"]
        counts = np.bincount(predicted[~np.isnan(predicted)].astype(np.int64), minlength=len(self.labels))
        classification: dict[str, Any] = {"labels": list(self.labels), "predicted": counts.tolist(),
                                          "templates": len(self.templates), "logit_scale": self.logit_scale}
        if self.truth is not None:
            classification.update(truth=self.truth, **evaluate(predicted, values["true_index"], values["true_rank"],
                                                                self.labels))
        return {"probability": describe(values["probability"], confidence=confidence),
                "classification": classification}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "labels": list(self.labels),
                "templates": list(self.templates), "truth": self.truth, "top_k": self.top_k,
                "logit_scale": self.logit_scale, "logit_scale_source": self.logit_scale_source, "definition": RECIPE}

    def fingerprint(self) -> dict[str, Any]:
        return {"metric": self.name, "model": self.model, "labels": list(self.labels),
                "templates": list(self.templates), "truth": self.truth, "top_k": self.top_k}

"""Zero-shot classification as pure numpy: the template-ensemble classifier, label probabilities, and the
evaluation against ground truth (top-1/top-5 accuracy, mean per-class recall, confusion table).

Conventions: embeddings are float32 rows; cosines are in [-1, 1]; ``logit_scale`` is the model's
``logit_scale.exp()`` (100 for OpenAI CLIP), so logits are ``logit_scale × cosine``; probabilities are a softmax
over the labels, in [0, 1], summing to 1 per image. Label indices are 0-based positions in the label list;
ranks are 1-based (rank 1 = the top label).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ensemble_classifier(text_embeddings: np.ndarray, n_labels: int, n_templates: int) -> np.ndarray:
    """The zero-shot classifier of the CLIP paper (``zeroshot_classifier`` of its ImageNet notebook): for each
    label, its L2-normalised embeddings under every template are averaged and the mean is L2-normalised again.

    *text_embeddings*: (n_labels × n_templates, D), label-major (label 0 under every template, then label 1 …),
    each row L2-normalised. Returns float32 (n_labels, D) unit vectors.
    """
    emb = np.asarray(text_embeddings, dtype=np.float64).reshape(n_labels, n_templates, -1)
    emb = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    mean = emb.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=-1, keepdims=True)).astype(np.float32)


def label_probabilities(images: np.ndarray, classifier: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over labels of ``logit_scale × cosine``: float64 (N, L) probabilities in [0, 1]; NaN rows where
    an image has no embedding. *images* (N, D) and *classifier* (L, D) are unit vectors."""
    cosine = np.asarray(images, dtype=np.float64) @ np.asarray(classifier, dtype=np.float64).T
    logits = float(logit_scale) * cosine
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def ranking(probabilities: np.ndarray) -> np.ndarray:
    """Label indices of each row from most to least probable (ties: lower index first); int64 (N, L)."""
    return np.argsort(-np.nan_to_num(probabilities, nan=-1.0), axis=1, kind="stable")


def true_ranks(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true label (index *truth*, −1 where unknown) among all labels; 0 where
    unknown or where the row has no probabilities."""
    order = ranking(probabilities)
    out = np.zeros(len(truth), dtype=np.int64)
    for i, t in enumerate(np.asarray(truth, dtype=np.int64)):
        if t >= 0 and not np.isnan(probabilities[i]).any():
            out[i] = int(np.flatnonzero(order[i] == t)[0]) + 1
    return out


def evaluate(predicted: np.ndarray, truth: np.ndarray, ranks: np.ndarray, labels: Sequence[str],
             ks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Accuracy against ground truth over the rows that have both a prediction and a true label.

    *predicted* and *truth*: label indices (float or int; NaN or negative where missing); *ranks*: 1-based rank
    of the true label (0 or NaN where missing). Returns

    * ``n``: rows evaluated;
    * ``top1``, ``top5`` (each k in *ks*, k capped at the number of labels): fraction of rows whose true label is
      among the k most probable, in [0, 1];
    * ``mean_per_class_recall``: the mean over labels that occur in the truth of (rows of that label predicted
      correctly / rows of that label), in [0, 1] (balanced accuracy);
    * ``per_class``: per label its ``n`` (true rows), ``recall`` (NaN without rows) and ``predicted`` (rows
      predicted as it);
    * ``confusion``: counts, ``confusion[i][j]`` = rows of true label i predicted as j (labels in list order).
    """
    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    rank = np.nan_to_num(np.asarray(ranks, dtype=np.float64), nan=0.0)
    ok = ~np.isnan(pred) & ~np.isnan(true) & (pred >= 0) & (true >= 0) & (rank >= 1)
    p, t, r = pred[ok].astype(np.int64), true[ok].astype(np.int64), rank[ok]
    n_labels = len(labels)
    confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    n = int(ok.sum())
    out: dict[str, Any] = {"n": n, "labels": list(labels)}
    for k in ks:
        out[f"top{k}"] = float((r <= min(k, n_labels)).mean()) if n else float("nan")
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(confusion) / support
    present = support > 0
    out["mean_per_class_recall"] = float(recall[present].mean()) if present.any() else float("nan")
    out["per_class"] = [{"label": lab, "n": int(support[i]), "recall": float(recall[i]),
                         "predicted": int(confusion[:, i].sum())} for i, lab in enumerate(labels)]
    out["confusion"] = confusion.tolist()
    return out

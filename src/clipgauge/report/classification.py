"""The report's section for zero-shot classification runs (``clipgauge classify``): accuracy, the confusion
matrix and the worst-classified images (lowest probability of the true label), each with its thumbnail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..stats.classification import evaluate
from ..stats.records import as_float
from .inputs import ReportRun
from .thumbnails import thumbnails

#: images listed as worst classified, per run
WORST = 24


def is_classification(run: ReportRun) -> bool:
    """Whether *run* holds zero-shot classification rows (``label`` and ``probability`` columns)."""
    return "classification" in (run.summary or {}) or ("label" in run.columns and "probability" in run.columns)


def classification_sections(runs: Sequence[ReportRun], thumb_size: int, worst: int = WORST) -> list[dict[str, Any]]:
    """Per classification run: its labels, accuracy (with ground truth: top-1, top-5, mean per-class recall and
    the confusion matrix, recomputed from the rows), and the worst-classified images: with ground truth the
    lowest ``true_probability`` first, otherwise the least confident top-1 (lowest ``probability``)."""
    out = []
    for r in runs:
        if not is_classification(r):
            continue
        declared = ((r.summary or {}).get("classification") or {}).get("labels")
        labels = list(declared or dict.fromkeys(x for rec in r.records for x in (rec.get("label"),
                                                                                 rec.get("true_label")) if x))
        index = {lab: i for i, lab in enumerate(labels)}
        has_truth = "true_label" in r.columns

        def idx(value: Any, index: dict[str, int] = index) -> float:
            return float(index[value]) if value in index else np.nan

        section: dict[str, Any] = {"name": r.name, "labels": labels, "truth": has_truth, "evaluation": None}
        if has_truth:
            ev = evaluate(np.array([idx(rec.get("label")) for rec in r.records]),
                          np.array([idx(rec.get("true_label")) for rec in r.records]),
                          np.array([as_float(rec.get("true_rank")) for rec in r.records]), labels)
            confusion = np.asarray(ev["confusion"])
            peak = max(1, int(confusion.max())) if confusion.size else 1
            section["evaluation"] = ev
            section["matrix"] = [{"label": lab, "cells": [(int(v), round(v / peak, 3)) for v in confusion[i]],
                                  "recall": ev["per_class"][i]["recall"], "n": ev["per_class"][i]["n"]}
                                 for i, lab in enumerate(labels)]
        key = "true_probability" if has_truth else "probability"
        values = np.array([as_float(rec.get(key)) for rec in r.records], dtype=np.float64)
        valued = np.flatnonzero(~np.isnan(values))
        shown = valued[np.argsort(values[valued], kind="stable")][:worst].tolist()
        located = [r.resolve_image(r.records[i].get("image")) for i in shown]
        thumbs = iter(thumbnails([p for p, _ in located if p is not None], thumb_size))
        cards = []
        for i, (path, reason) in zip(shown, located):
            rec = r.records[i]
            th = next(thumbs) if path is not None else None
            cards.append({"row": i + 1, "image": str(rec.get("image") or ""), "label": rec.get("label"),
                          "probability": as_float(rec.get("probability")), "true_label": rec.get("true_label"),
                          "true_probability": as_float(rec.get("true_probability")),
                          "uri": th.uri if th is not None else None, "width": th.width if th is not None else 0,
                          "height": th.height if th is not None else 0,
                          "missing": th.error if th is not None else reason})
        section["worst"] = cards
        out.append(section)
    return out

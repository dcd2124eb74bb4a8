"""``clipgauge backbones``: which CLIP to trust? The driver behind :func:`clipgauge.compare_backbones`.

One :func:`clipgauge.score` run with one ``clip`` metric per backbone (``clip:model=SPEC,suffix=_bK``: columns
``cosine_b0``, ``cosine_b1``, …), so every image is decoded once and every backbone scores the same rows. From its
results: the row and system agreement of every two backbones and the rows they disagree on most
(:mod:`clipgauge.stats.backbones`), and from its timings each backbone's load time, images/s and memory
(:mod:`clipgauge.pipeline.timing`), measured in the same run on the same machine.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .paths import resolve_path
from .stats.backbones import disagreements, row_correlations, system_agreement

#: libraries imported before the run, so the first backbone's load time does not include them
_WARM_IMPORTS = ("torch", "transformers", "open_clip")


@dataclass
class BackboneComparison:
    """What ``clipgauge backbones`` found (``to_dict`` is its ``--json``).

    ``backbones``: per backbone ``{"name", "model", "column", "scored", "mean", "timing"}``; ``correlations``:
    per pair of backbones, Spearman ρ and Kendall τ-b of per-row cosines; ``systems``: see
    :func:`~clipgauge.stats.backbones.system_agreement` (None without a system column); ``disagreements``: the
    rows with the largest spread of rank percentiles (with ``image``, ``prompt`` and each backbone's cosine).
    """

    input: str
    rows: int
    backbones: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    systems: dict[str, Any] | None
    disagreements: list[dict[str, Any]]
    results: str | None = None
    errors: int = 0
    first_error: str | None = None
    notes: list[str] = field(default_factory=list)
    robustness: dict[str, Any] | None = None
    linear_probe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "rows": self.rows, "backbones": self.backbones,
                "correlations": self.correlations, "systems": self.systems, "disagreements": self.disagreements,
                "results": self.results, "errors": self.errors, "first_error": self.first_error,
                "notes": self.notes, "robustness": self.robustness, "linear_probe": self.linear_probe}


def backbone_metrics(models: list[str]) -> list[tuple[type, dict[str, str]]]:
    """One ``clip`` metric per model, with the column suffix ``_b0``, ``_b1``, …; :class:`UsageError` for fewer
    than two models or a model given twice."""
    from .metrics.clip import ClipScore

    if len(models) < 2:
        raise UsageError("comparing backbones needs at least two models",
                         cli="backbones needs at least two models (--model A --model B)")
    seen = [m for i, m in enumerate(models) if m in models[:i]]
    if seen:
        raise UsageError(f"model '{seen[0]}' is given twice")
    return [(ClipScore, {"model": m, "suffix": f"_b{i}", "scale": "cosine"}) for i, m in enumerate(models)]


def compare_backbones(input_spec: str | Path, models: list[str], *, options: Any = None,
                      out: str | Path | None = None, system_column: str | None = None, top: int = 20,
                      image_column: str | None = None, prompt_column: str | None = None,
                      labels: list[str] | None = None, truth: str | None = None, templates: Any = None,
                      recall: bool = False, robustness: bool = False, linear_probe: str | None = None,
                      seed: int = 0) -> BackboneComparison:
    """Score *input_spec* (any input :func:`clipgauge.score` reads) with every CLIP in *models* in one run and
    compare them: per-row correlations, system rankings by *system_column*, the *top* rows they disagree on
    most, and each backbone's speed and memory in this run. *options*: a :class:`~clipgauge.ScoreOptions`
    (device, batch size, precision…; its metrics are replaced). *out*: keep the results file (one
    ``cosine_bK`` column per backbone). With *labels* and *truth* (the column of each row's true label), each
    backbone's zero-shot accuracy (:func:`clipgauge.classify`, *templates*); with *recall*, its recall@k in both
    directions with each row's prompt as its true caption (:func:`clipgauge.retrieve`) — each a pass of its own
    per backbone, after the timed run. *robustness*: each backbone's score drift, rank stability and (with
    *labels*/*truth*) zero-shot top-1 under five ImageNet-C corruptions at five severities; *linear_probe*: a
    column of class labels for CLIP_benchmark's linear probe (k-shot and full data) beside zero-shot — both from
    one further pass with every backbone loaded (:mod:`clipgauge.backbone_tasks`), seeded by *seed*. Raises
    :class:`UsageError` for bad input.
    """
    if (labels is None) != (truth is None):
        raise UsageError("zero-shot accuracy needs both labels and the column of true labels",
                         cli="zero-shot accuracy needs both --labels-file FILE and --truth COLUMN")
    from .pipeline.plan import ScoreOptions
    from .runs import score
    from .sinks.results import read_results

    metrics = backbone_metrics(list(models))
    for column in (system_column, linear_probe):
        if column is not None:
            from .sources.detect import open_source

            names = list(open_source(input_spec, image_column=image_column,
                                     prompt_column=prompt_column).schema().names)
            if column not in names:
                raise UsageError(f"the input has no '{column}' column (columns: {', '.join(names)})")
    options = (options or ScoreOptions()).with_(metrics=metrics, save_embeddings=False)
    for name in _WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with tempfile.TemporaryDirectory(prefix="clipgauge-backbones-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "backbones.parquet"
        result = score(input_spec, target, options, resume=False, image_column=image_column,
                       prompt_column=prompt_column)
        records = read_results(target)
    names = [f"b{i}" for i in range(len(models))]
    scores = {n: np.array([_float(r.get(f"cosine_{n}")) for r in records]) for n in names}
    backbones = []
    for n, m in zip(names, models):
        x = scores[n]
        ok = ~np.isnan(x)
        backbones.append({"name": n, "model": m, "column": f"cosine_{n}", "scored": int(ok.sum()),
                          "mean": float(x[ok].mean()) if ok.any() else None, "timing": result.timings.get(m)})
    for entry in backbones:
        entry.update(_tasks(input_spec, entry["model"], options, labels, truth, templates, recall, image_column,
                            prompt_column))
    worst = disagreements(scores, top=top)
    base = (result.summary.get("input") or {}).get("base_dir")
    for d in worst:
        r = records[d["index"]]
        d.update(image=_path(r.get("image"), base), prompt=r.get("prompt"),
                 cosines={n: float(scores[n][d["index"]]) for n in names})
    systems = system_agreement(scores, [r.get(system_column) for r in records]) if system_column else None
    notes = ["speed: images/s of each backbone's own preprocessing and forward pass (decoding is shared and not "
             "counted); load_s: building the model after the libraries were imported",
             "zero-shot accuracy and recall@k (when asked for) come from a pass of their own per backbone"]
    extra: dict[str, Any] = {}
    if robustness or linear_probe is not None:
        from .backbone_tasks import run_tasks

        extra = run_tasks(records, [_path(r.get("image"), base) for r in records], list(models), options,
                          robustness_on=robustness, probe_column=linear_probe, labels=labels, truth=truth,
                          templates=templates, seed=seed)
    return BackboneComparison(str(input_spec), len(records), backbones, row_correlations(scores), systems, worst,
                              str(out) if out is not None else None, result.n_errors, result.first_error, notes,
                              extra.get("robustness"), extra.get("linear_probe"))


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _path(value: Any, base: str | None) -> str | None:
    """An image cell as a path a report can open (relative paths against the manifest's folder)."""
    if not isinstance(value, str) or not value:
        return None
    return str(resolve_path(value, "." if base is None else Path(base).expanduser().resolve()))


def _tasks(input_spec: str | Path, model: str, options: Any, labels: list[str] | None, truth: str | None,
           templates: Any, recall: bool, image_column: str | None, prompt_column: str | None) -> dict[str, Any]:
    """``zeroshot`` (top-1/top-5 accuracy, mean per-class recall, n; fractions in [0, 1]) and ``recall`` (recall@k
    per direction) of one backbone, as :func:`clipgauge.classify` and :func:`clipgauge.retrieve` compute them."""
    out: dict[str, Any] = {}
    if labels is not None:
        from .zeroshot.classify import classify

        result = classify(input_spec, labels, templates=templates, truth=truth, model=model, options=options,
                          image_column=image_column)
        found = result.summary.get("classification") or {}
        out["zeroshot"] = {k: found.get(k) for k in ("n", "top1", "top5", "mean_per_class_recall")}
    if recall:
        from .zeroshot.retrieve import retrieve

        found = retrieve(input_spec, model=model, evaluate=True, device=options.device,
                         batch_size=options.batch_size, precision=options.precision, image_column=image_column,
                         prompt_column=prompt_column)
        out["recall"] = found.recall
    return out

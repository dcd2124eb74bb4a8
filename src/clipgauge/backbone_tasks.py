"""``clipgauge backbones --robustness`` and ``--linear-probe``: one pass over the rows with every backbone loaded.

Each image is decoded once; with ``--robustness`` its 25 corrupted versions (:mod:`clipgauge.corruptions`, five
corruptions × five severities, Gaussian noise seeded per row) are made once and embedded by every backbone in the
same pass, beside the clean image. The tables come from :mod:`clipgauge.stats.robustness` (score drift, rank
stability, zero-shot top-1 and corruption errors) and :mod:`clipgauge.stats.linear_probe` (CLIP_benchmark's
linear probe on the clean embeddings, beside zero-shot on the same test rows).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_rng
from .errors import UsageError


@dataclass
class Embeddings:
    """Per backbone: clean image embeddings (n, D), prompt embeddings (n, D) and, with corruptions, the corrupted
    image embeddings (corruptions, severities, n, D); ``rows``: the result rows they belong to."""

    rows: list[int]
    clean: dict[str, np.ndarray]
    prompts: dict[str, np.ndarray]
    corrupted: dict[str, np.ndarray] | None
    seconds: float
    load_s: float


def embed_pass(images: Sequence[Any], prompts: Sequence[str], rows: list[int], models: dict[str, str],
               options: Any, *, corruptions: bool, seed: int = 0) -> tuple[Embeddings, dict[str, Any]]:
    """Load every backbone of *models* (name → spec) once and embed *images* (PIL) and *prompts*; with
    *corruptions*, every corrupted version too, each made once per batch and embedded by every backbone.
    Returns the embeddings and the loaded embedders (for zero-shot classifiers)."""
    from .scoring.scorer import Embedder

    t0 = time.perf_counter()
    embedders = {n: Embedder(m, settings=options.scorer_settings()) for n, m in models.items()}
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n, n_c, n_s = len(images), len(CORRUPTIONS), 5
    clean: dict[str, list[np.ndarray]] = {k: [] for k in embedders}
    bad: dict[str, list[np.ndarray]] = {k: [] for k in embedders}
    step = max(1, int(options.batch_size))
    for start in range(0, n, step):
        chunk = list(images[start:start + step])
        batch = list(chunk)
        if corruptions:
            for j, image in enumerate(chunk):
                for c in CORRUPTIONS:
                    batch.extend(corrupt(image, c, s, corruption_rng(seed, rows[start + j], c, s))
                                 for s in range(1, n_s + 1))
        for name, embedder in embedders.items():
            emb = embedder.embed_images(batch)
            clean[name].append(emb[:len(chunk)])
            if corruptions:
                bad[name].append(emb[len(chunk):].reshape(len(chunk), n_c, n_s, -1))
    prompt_emb = {k: e.embed_texts(list(prompts)) for k, e in embedders.items()}
    out = Embeddings(rows, {k: np.concatenate(v) for k, v in clean.items()}, prompt_emb,
                     {k: np.concatenate(v).transpose(1, 2, 0, 3) for k, v in bad.items()} if corruptions else None,
                     time.perf_counter() - t0, load_s)
    return out, embedders


def zero_shot_classifiers(embedders: dict[str, Any], labels: list[str], templates: Any) -> dict[str, np.ndarray]:
    """Per backbone the CLIP paper's ensemble classifier (labels × D) over *templates* (as ``clipgauge classify``)."""
    from .metrics.clip_iqa import embed_prompts
    from .metrics.zeroshot import fill, parse_templates
    from .stats.classification import ensemble_classifier

    tpl = parse_templates(templates)
    texts = [fill(t, label) for label in labels for t in tpl]
    return {k: ensemble_classifier(embed_prompts(e, texts), len(labels), len(tpl)) for k, e in embedders.items()}


def robustness(emb: Embeddings, classifiers: dict[str, np.ndarray] | None, truth: np.ndarray | None,
               seed: int) -> dict[str, Any]:
    """The ``robustness`` document: corruption definitions, per-severity and summary tables, seconds."""
    from .stats.robustness import robustness_tables

    if emb.corrupted is None:
        raise ValueError("no corrupted embeddings")
    t0 = time.perf_counter()
    clean = {k: np.sum(v * emb.prompts[k], axis=1) for k, v in emb.clean.items()}
    corrupted = {k: {c: np.sum(v[i] * emb.prompts[k][None], axis=-1) for i, c in enumerate(CORRUPTIONS)}
                 for k, v in emb.corrupted.items()}
    preds = None
    if classifiers is not None and truth is not None:
        preds = {k: {"clean": np.argmax(emb.clean[k] @ classifiers[k].T, axis=1),
                     **{c: np.argmax(emb.corrupted[k][i] @ classifiers[k].T, axis=-1)
                        for i, c in enumerate(CORRUPTIONS)}} for k in emb.clean}
    tables = robustness_tables(clean, corrupted, preds, truth)
    return {"rows": len(emb.rows), "seed": seed, "severities": {c: list(SEVERITIES[c]) for c in CORRUPTIONS},
            "tables": tables["rows"], "summary": tables["summary"],
            "seconds": emb.seconds + time.perf_counter() - t0,
            "notes": ["seconds: making every corrupted image once and embedding it (and the clean image) with every "
                      "backbone, plus the tables; the backbones' load time is not counted",
                      "mCE and relative mCE are not divided by AlexNet's errors as in ImageNet-C (no reference "
                      "model): fractions in [0, 1]"]}


def linear_probe_doc(emb: Embeddings, values: list[Any], column: str, embedders: dict[str, Any], templates: Any,
                     *, ks: tuple[int, ...], repeats: int, seed: int, embed_s: float) -> dict[str, Any]:
    """The ``linear_probe`` document: per backbone k-shot and full-data probe top-1 and zero-shot top-1 on the
    same test rows (the column's values as labels, *templates*), with the seconds it took."""
    from .stats.linear_probe import linear_probe

    t0 = time.perf_counter()
    classes = sorted({str(v) for v in values if v is not None and str(v) != ""})
    if len(classes) < 2:
        raise UsageError(f"--linear-probe needs at least two classes in column '{column}'")
    y = np.array([classes.index(str(v)) if v is not None and str(v) in classes else -1 for v in values])
    try:
        doc = linear_probe(emb.clean, y, ks=ks, repeats=repeats, seed=seed)
    except ValueError as exc:
        raise UsageError(f"--linear-probe {column}: {exc}") from exc
    test = np.asarray(doc["test_rows"], dtype=np.int64)
    clf = zero_shot_classifiers(embedders, classes, templates)
    zero = {k: float(np.mean(np.argmax(emb.clean[k][test] @ clf[k].T, axis=1) == y[test])) for k in emb.clean}
    doc.update(column=column, classes=classes, zeroshot=zero, seconds=embed_s + time.perf_counter() - t0,
               notes=["CLIP_benchmark's protocol with scikit-learn's LogisticRegression; deviations in "
                      "docs/commands/backbones.md", "zeroshot: top-1 on the same test rows, the column's values "
                      "as labels", "seconds: embedding (when not shared with --robustness) and every fit"])
    return doc


def run_tasks(records: list[dict[str, Any]], paths: list[str | None], models: list[str], options: Any, *,
              robustness_on: bool, probe_column: str | None, labels: list[str] | None, truth: str | None,
              templates: Any, seed: int = 0, ks: tuple[int, ...] = (1, 2, 4, 8, 16), repeats: int = 5
              ) -> dict[str, Any]:
    """``{"robustness": ..., "linear_probe": ...}`` (those asked for) for the result *records* whose image file is
    in *paths* (None: not a file, skipped)."""
    from .decode import load_image

    rows, images = [], []
    for i, p in enumerate(paths):
        if p is None or not isinstance(records[i].get("prompt"), str):
            continue
        try:
            images.append(load_image(p))
        except Exception:  # noqa: BLE001 - an unreadable image is left out, as the score run left it
            continue
        rows.append(i)
    if not rows:
        raise UsageError("--robustness and --linear-probe need image files (none of the rows had a readable one)")
    names = {f"b{i}": m for i, m in enumerate(models)}
    emb, embedders = embed_pass(images, [records[i]["prompt"] for i in rows], rows, names, options,
                                corruptions=robustness_on, seed=seed)
    out: dict[str, Any] = {}
    if robustness_on:
        clf = truth_idx = None
        if labels is not None and truth is not None:
            clf = zero_shot_classifiers(embedders, labels, templates)
            truth_idx = np.array([labels.index(v) if (v := records[i].get(truth)) in labels else -1 for i in rows])
        out["robustness"] = robustness(emb, clf, truth_idx, seed)
        out["robustness"].update(skipped=len(records) - len(rows), load_s=emb.load_s)
    if probe_column is not None:
        values = [records[i].get(probe_column) for i in rows]
        out["linear_probe"] = linear_probe_doc(emb, values, probe_column, embedders, templates, ks=ks,
                                               repeats=repeats, seed=seed, embed_s=0.0 if robustness_on else
                                               emb.seconds)
        out["linear_probe"]["test_rows"] = [rows[i] for i in out["linear_probe"]["test_rows"]]
        out["linear_probe"].update(skipped=len(records) - len(rows), load_s=emb.load_s)
    return out

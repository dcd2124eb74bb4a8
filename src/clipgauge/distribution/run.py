"""``clipgauge distance``'s Python API: distribution distances and diversity between two image sets, from the
same CLIP image embeddings as the CLIP score.

* ``cmmd`` — squared MMD ×1000, Gaussian RBF kernel σ = 10, over unit embeddings; the google-research estimator
  that keeps the diagonal terms (≥ 0; 0 for identical sets). ``cmmd_unbiased`` drops them (can be < 0).
* ``fd`` — Fréchet distance between Gaussians fitted to the embeddings (squared embedding units; clean-fid's
  ``frechet_distance``; biased upwards at small N, so the sample sizes are reported and a warning given below
  :data:`FD_MIN_ROWS` rows or D rows).
* ``kid`` — KID as torchmetrics defines it: unbiased polynomial-kernel MMD (degree 3, γ = 1/D, coef0 1) over
  ``subsets`` random subsets of ``subset_size`` rows (mean and std; std with ddof 0 as torchmetrics).
* ``vendi`` — each side's Vendi score (cosine kernel): an effective number of distinct images, 1..N.

``metrics`` defaults to all four (so that a plain ``distance A B`` gives every key); ``--metric cmmd,fd`` limits them.

Each distance comes with a seeded percentile-bootstrap interval (``_ci``: [low, high]), both sets resampled
with replacement (a reference file's mean and covariance are fixed; its stored subsample is resampled), from a
seeded subsample of at most ``ci_rows`` rows a side. Resamples repeat rows, which biases MMD, FD and KID upwards,
so the interval is moved to put the resamples' mean on the estimate; CMMD's and FD's are floored at 0 (both are
non-negative). Above ``ci_rows`` rows the interval has the width of a ``ci_rows``-row set: wider than the full
set's (conservative).

Memory: every embedding of an image side is kept (float32; 50,000 × 768 is 150 MB) — CMMD is computed in blocks,
so all rows are used, not a subsample; FD's mean and covariance are accumulated in the same streaming pass.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .reference import ReferenceStats
from .sides import PREPROCESS, Side, check_same_model, embed_side, open_side, reference_side

#: distances and diversity ``distance`` computes; the default
METRICS = ("cmmd", "fd", "kid", "vendi")
#: the default: every metric (a plain ``distance A B`` gives every key); ``--metric cmmd,fd`` limits them
DEFAULT_METRICS = METRICS
#: the CMMD paper's model
DEFAULT_MODEL = "openai/clip-vit-large-patch14-336"
#: FD is warned about below this many rows on a side (and below D rows)
FD_MIN_ROWS = 5000
#: bootstrap resamples for the intervals, and the rows of each side they are computed on (seeded subsample)
RESAMPLES, CI_ROWS = 100, 2000


def parse_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """Names (repeatable, comma lists, ``all``) → known metric names in order; UsageError for an unknown one."""
    out: list[str] = []
    for item in names:
        for n in str(item).split(","):
            n = n.strip().lower()
            if not n:
                continue
            if n == "all":
                out += METRICS
            elif n in METRICS:
                out.append(n)
            else:
                raise UsageError(f"unknown distance metric '{n}' (known: {', '.join(METRICS)}, all)")
    return tuple(dict.fromkeys(out)) or DEFAULT_METRICS


def _embedder(model: str | None, options: dict[str, Any]) -> Any:
    from ..scoring.scorer import Embedder

    return Embedder(model or DEFAULT_MODEL, **{k: v for k, v in options.items() if v is not None})


def read_side(spec: str | Path, *, model: str | None = None, device: str | None = None,
              batch_size: int | None = None, precision: str | None = None, workers: int | None = None,
              preprocess: str = "model", image_column: str | None = None) -> Side:
    """One side as :func:`distance` reads it: a reference file, stored embeddings, or images embedded by *model*
    (:data:`DEFAULT_MODEL` when None and nothing records one) with the ``model`` or ``cmmd`` preprocessing."""
    if preprocess not in PREPROCESS:
        raise UsageError(f"preprocess must be one of {', '.join(PREPROCESS)}")
    options = {"device": device, "batch_size": batch_size, "precision": precision, "num_workers": workers}
    return _read(str(spec), open_side(spec, image_column=image_column), model, options, preprocess, {})


def _read(spec: str, opened: Any, model: str | None, options: dict[str, Any], preprocess: str,
          cache: dict[str, Any]) -> Side:
    """The side *spec*, already opened by :func:`~.sides.open_side` (a reference file or a gallery)."""
    if isinstance(opened, ReferenceStats):
        return reference_side(spec, opened)
    if opened.kind == "stored":
        if model is not None and "embedder" not in cache:
            opened.check_model(cache.setdefault("embedder", _embedder(model, options)))
        return embed_side(spec, opened, None, preprocess)
    embedder = cache.setdefault("embedder", _embedder(model or cache.get("model"), options))
    return embed_side(spec, opened, embedder, preprocess)


def distance(generated: str | Path, reference: str | Path, *, metrics: Sequence[str] = DEFAULT_METRICS,
             model: str | None = None, device: str | None = None, batch_size: int | None = None,
             precision: str | None = None, workers: int | None = None, preprocess: str = "model",
             image_column: str | None = None, seed: int = 0, resamples: int = RESAMPLES, ci_rows: int = CI_ROWS,
             kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict[str, Any]:
    """Distances between the *generated* and *reference* image sets (see the module docstring); a JSON-ready
    dict: each asked metric's value (``cmmd``, ``cmmd_unbiased``, ``fd``, ``kid_mean``/``kid_std``,
    ``vendi_generated``/``vendi_reference``), each distance's ``_ci`` ([low, high], ``resamples`` seeded
    resamples of at most ``ci_rows`` rows a side; None with ``resamples=0``), ``n_generated``/``n_reference``,
    the failed rows, ``model``, ``preprocessing`` and ``warnings``.

    *metrics*: names from :data:`METRICS` or ``"all"`` (comma lists allowed; default: all four). Units:
    CMMD squared MMD ×1000 (≥ 0); FD squared embedding units (≥ 0); KID polynomial-kernel MMD² (unbiased, can be
    < 0); Vendi an effective count in [1, n]. *model* defaults to the model of stored embeddings or a reference
    file, else :data:`DEFAULT_MODEL`."""
    if preprocess not in PREPROCESS:
        raise UsageError(f"preprocess must be one of {', '.join(PREPROCESS)}")
    names = parse_metrics(metrics)
    options = {"device": device, "batch_size": batch_size, "precision": precision, "num_workers": workers}
    cache: dict[str, Any] = {}
    opened = {side: open_side(side, image_column=image_column) for side in (generated, reference)}
    if model is None:  # a model recorded by either side (a reference file first) is the default for the other
        recorded = [getattr(opened[side], "model", None) for side in (reference, generated)]
        if any(recorded):
            cache["model"] = next(m for m in recorded if m)
    gen = _read(str(generated), opened[generated], model, options, preprocess, cache)
    ref = _read(str(reference), opened[reference], model, options, preprocess, cache)
    check_same_model(gen, ref)
    return compute(gen, ref, names, seed=seed, resamples=resamples, ci_rows=ci_rows, kid_subsets=kid_subsets,
                   kid_subset_size=kid_subset_size)


def compute(gen: Side, ref: Side, names: Sequence[str], *, seed: int = 0, resamples: int = RESAMPLES,
            ci_rows: int = CI_ROWS, kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict[str, Any]:
    """The distances of :func:`distance` between two read sides."""
    from .bootstrap import bootstrap_ci
    from .frechet import frechet_distance
    from .kid import kid
    from .mmd import cmmd
    from .vendi import vendi_score

    x, y = gen.embeddings, ref.embeddings
    out: dict[str, Any] = {}
    warnings: list[str] = []

    def ci(stat: Any, estimate: float, fixed: Any = None, floor: float | None = None) -> list[float] | None:
        # a resample repeats rows, which biases MMD, FD and KID upwards: the interval is moved so that the resamples'
        # mean lands on the full sets' estimate (with the width of a ci_rows-row set when a side is larger)
        if resamples < 1:
            return None
        return list(bootstrap_ci(stat, x, fixed if fixed is not None else y, resamples=resamples, seed=seed,
                                 max_rows=ci_rows, resample_y=fixed is None, estimate=estimate, floor=floor))

    if "cmmd" in names:
        out["cmmd"] = cmmd(x, y)
        out["cmmd_unbiased"] = cmmd(x, y, unbiased=True) if min(len(x), len(y)) > 1 else None
        out["cmmd_ci"] = ci(cmmd, out["cmmd"], floor=0.0)  # the estimator keeps the diagonal: >= 0
    if "fd" in names:
        out["fd"] = frechet_distance(gen.mean, gen.cov, ref.mean, ref.cov)
        if ref.kind == "reference":  # the reference's moments are of all its images: fixed
            out["fd_ci"] = ci(lambda a, m: frechet_distance(*_mc(a), m[0], m[1]), out["fd"], fixed=(ref.mean, ref.cov),
                              floor=0.0)
        else:
            out["fd_ci"] = ci(lambda a, b: frechet_distance(*_mc(a), *_mc(b)), out["fd"], floor=0.0)
        dim = x.shape[1]
        for label, n in (("generated", gen.n), ("reference", ref.n)):
            if n < max(FD_MIN_ROWS, dim):
                warnings.append(f"fd: the {label} set has {n} images; FD is biased upwards at small N (compare FDs "
                                f"only at equal N, and prefer at least {max(FD_MIN_ROWS, dim)})")
    if "kid" in names:
        size = min(kid_subset_size, len(x), len(y))
        out["kid_mean"], out["kid_std"] = kid(x, y, subsets=kid_subsets, subset_size=size, seed=seed)
        out["kid_subset_size"], out["kid_subsets"] = size, kid_subsets
        inner = 1  # one subset per resample: the interval of a one-subset estimate (wider than the mean's)
        out["kid_ci"] = ci(lambda a, b: kid(a, b, subsets=inner, subset_size=min(size, len(a), len(b)),
                                             seed=seed)[0], out["kid_mean"])
    if "vendi" in names:
        out["vendi_generated"] = vendi_score(x)
        out["vendi_reference"] = vendi_score(y)
    out.update({"n_generated": gen.n, "n_reference": ref.n, "n_failed_generated": gen.n_failed,
                "n_failed_reference": ref.n_failed, "model": gen.model or ref.model,
                "weights_sha256": gen.weights_sha256 or ref.weights_sha256,
                "preprocessing": gen.preprocessing or ref.preprocessing,
                "sides": {"generated": {"spec": gen.spec, "kind": gen.kind, **gen.extra},
                          "reference": {"spec": ref.spec, "kind": ref.kind, **ref.extra}},
                "bootstrap": {"resamples": resamples, "max_rows_per_side": ci_rows, "seed": seed, "level": 0.95},
                "warnings": warnings})
    if ref.kind == "reference" and len(y) < ref.n:
        warnings.append(f"cmmd/kid/vendi of the reference use its stored subsample of {len(y)} of {ref.n} images")
    return out


def _mc(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64)
    return a.mean(axis=0), np.cov(a, rowvar=False)


def save_reference(images: str | Path, out: str | Path, *, model: str | None = None, device: str | None = None,
                   batch_size: int | None = None, precision: str | None = None, workers: int | None = None,
                   preprocess: str = "model", image_column: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Embed *images* (or read its stored embeddings) and write reference statistics to *out* (``.npz``); returns
    a description (path, n, model, dimensions)."""
    from .. import __version__
    from ..provenance import library_versions
    from .reference import SAMPLE_ROWS, subsample
    from .reference import save_reference as write

    if preprocess not in PREPROCESS:
        raise UsageError(f"preprocess must be one of {', '.join(PREPROCESS)}")
    options = {"device": device, "batch_size": batch_size, "precision": precision, "num_workers": workers}
    cache: dict[str, Any] = {}
    side = _read(str(images), open_side(images, image_column=image_column), model, options, preprocess, cache)
    prov = {"clipgauge_version": __version__, "libraries": library_versions(), "input": str(images),
            "input_kind": side.kind, "input_fingerprint": input_fingerprint(images), "n_failed": side.n_failed,
            "sample_seed": seed, "sample_rows": SAMPLE_ROWS,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if "embedder" in cache and side.kind != "stored":  # device, precision, batch size, weights … of the embedding
        prov["embedder"] = cache["embedder"].provenance()
    stats = ReferenceStats(side.model, side.weights_sha256, side.preprocessing, side.n, side.mean, side.cov,
                           subsample(side.embeddings, seed=seed), prov)
    path = write(out, stats)
    return {"path": str(path), "n": side.n, "embeddings_kept": int(len(stats.embeddings)),
            "dimensions": int(side.embeddings.shape[1]), "model": side.model, "n_failed": side.n_failed}


def input_fingerprint(spec: str | Path) -> dict[str, Any]:
    """What the input was, cheaply: a file's SHA-256; a folder's file count, total bytes and the SHA-256 of its
    sorted relative names and sizes (the images themselves are not hashed again); else the spec as given."""
    import hashlib

    from ..hashing import file_sha256

    p = Path(str(spec)).expanduser()
    if p.is_file():
        return {"file": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}
    if p.is_dir():
        h, count, total = hashlib.sha256(), 0, 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            size = f.stat().st_size
            h.update(f"{f.relative_to(p).as_posix()}\0{size}\n".encode())
            count, total = count + 1, total + size
        return {"folder": str(p), "files": count, "bytes": total, "names_sizes_sha256": h.hexdigest()}
    return {"spec": str(spec)}

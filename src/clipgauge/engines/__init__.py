"""Engines that score a streaming input into a sharded, resumable results folder.

* ``local`` (:mod:`.local`): this process, in input order, shard after shard;
* ``ray`` (:mod:`.ray_engine`): Ray Data — read tasks on CPUs, a pool of scoring actors (one model each,
  one GPU each when there are GPUs) — for many GPUs and machines. Only this engine imports ``ray``.

Both write through :class:`~clipgauge.sinks.sharded.ShardedRun` with the same fingerprint, so a run started
by one engine can be finished by the other, and both give the same scores for the same rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..scoring.precision import PRECISION_EFFECTS
from ..scoring.scales import check_scale
from ..sinks.sharded import ShardedRun, list_parts, read_column
from ..sources.detect import open_source
from ..sources.shards import RowSource
from ..stats.summary import summarize_scores

ENGINES = ("local", "ray")
FINGERPRINT_VERSION = 1


class EngineError(Exception):
    """The distributed job failed; committed shards are kept and the same command resumes the run."""


@dataclass
class RayOptions:
    """How the Ray engine runs: cluster address, actors, resources per actor."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0


@dataclass
class ShardedResult:
    """A finished sharded run: its folder, summary, and the first row error (if any)."""

    folder: Path
    summary: dict[str, Any]
    first_error: str | None
    resumed: bool
    shards_written: int

    @property
    def n_errors(self) -> int:
        return int(self.summary["errors"])


def run_sharded(
    input_spec: str | Path,
    out: str | Path,
    scorer_kwargs: dict[str, Any],
    *,
    engine: str = "local",
    scale: str = "cosine",
    shard_size: int = 10_000,
    resume: bool = True,
    save_embeddings: bool = False,
    image_column: str | None = None,
    prompt_column: str | None = None,
    ray: RayOptions | None = None,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
) -> ShardedResult:
    """Score *input_spec* (WebDataset, Parquet, HF dataset or manifest) into the sharded folder *out*.

    *scorer_kwargs* are :class:`~clipgauge.Scorer` arguments (``model``, ``device``, ``batch_size``,
    ``precision``, ``num_workers``, ``prompt_prefix``, …). *progress(total)* returns an ``update(n)``
    function (``total`` may be None when the input's size is not known yet).
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine '{engine}' (choose from {', '.join(ENGINES)})")
    try:
        check_scale(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    source = open_source(input_spec, image_column=image_column, prompt_column=prompt_column)
    from ..scoring.scorer import Scorer

    if engine == "local":
        scorer = Scorer(**scorer_kwargs)
    else:  # the driver only needs the weights hash and the embedding width: CPU, fp32
        scorer = Scorer(**{**scorer_kwargs, "device": "cpu", "precision": "fp32", "cache_dir": None})
    provenance = scorer.provenance()
    if engine == "ray":
        precision = scorer_kwargs.get("precision", "fp32")
        provenance.update(precision=precision, precision_effect=PRECISION_EFFECTS[precision], device="ray actors",
                          embedding_cache=None)
    from .batch import embedding_dim

    dim = embedding_dim(scorer) if save_embeddings else None
    fingerprint = run_fingerprint(source, provenance, scale=scale, save_embeddings=save_embeddings,
                                  max_image_pixels=scorer.max_image_pixels)
    where = {"spec": _absolute(str(input_spec)), "image_column": image_column, "prompt_column": prompt_column}
    with ShardedRun(out, fingerprint, shard_size=shard_size, resume=resume, provenance=provenance,
                    input=where) as run:
        before = len(run.committed)
        if run.rows is None or run.pending():
            total = None if run.rows is None else sum(run.shard_rows(k) for k in run.pending())
            update = progress(total) if progress is not None else None
            if engine == "local":
                from .local import run_local

                run_local(source, run, scorer, scale=scale, embeddings_dim=dim, progress=update)
            else:
                from .ray_engine import run_ray

                del scorer
                run_ray(source, run, scorer_kwargs, scale=scale, embeddings_dim=dim, options=ray or RayOptions(),
                        progress=update)
        missing = run.pending()
        if missing:
            raise EngineError(f"shards {missing[:5]} were not written; re-run the same command to finish them")
        run.verify()
        summary, first_error = summarize_folder(run.folder, scale=scale, source=source, provenance=provenance)
        summary["run"] = {"folder": str(run.folder), "shards": run.n_shards, "shard_size": run.shard_size,
                          "engine": engine, "resumed_from_shards": before}
        run.finish(summary)
        return ShardedResult(folder=run.folder, summary=summary, first_error=first_error, resumed=before > 0,
                             shards_written=len(run.committed) - before)


def _absolute(spec: str) -> str:
    """*spec* (a path or a brace/glob pattern) made absolute, so the run manifest can reopen it from anywhere."""
    return str(Path(os.path.abspath(os.path.expanduser(spec))))


def open_run_source(doc: dict[str, Any]) -> RowSource:
    """Reopen the input of a run from its ``_run.json`` document (e.g. to copy kept images)."""
    where = doc.get("input") or {}
    if not where.get("spec"):
        raise UsageError("the run manifest does not say where its input is")
    return open_source(where["spec"], image_column=where.get("image_column"), prompt_column=where.get("prompt_column"))


def run_fingerprint(source: RowSource, provenance: dict[str, Any], *, scale: str, save_embeddings: bool,
                    max_image_pixels: int) -> dict[str, Any]:
    """What must match for a run folder to be resumed: model weights, preprocessing, options, input."""
    return {
        "version": FINGERPRINT_VERSION,
        "model_weights_sha256": provenance["model"]["weights_sha256"],
        "model_family": provenance["model"]["family"],
        "context_length": provenance["model"]["context_length"],
        "preprocessing": provenance["preprocessing"],
        "precision": provenance["precision"],
        "prompt_prefix": provenance["text"]["prompt_prefix"],
        "max_image_pixels": max_image_pixels,
        "scale": scale,
        "save_embeddings": save_embeddings,
        "input": source.fingerprint(),
    }


def summarize_folder(folder: str | Path, *, scale: str, source: RowSource | None = None,
                     provenance: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    """The run summary of a sharded results folder (as ``score --out FILE`` writes), and the first error.

    Reads only the ``cosine``, ``truncated`` and ``error`` columns, part by part.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cosine = read_column(folder, "cosine")
    truncated = read_column(folder, "truncated", dtype=bool)
    n_errors, first_error = 0, None
    for _, path in list_parts(folder).items():
        col = pq.read_table(path, columns=["error"]).column("error")
        bad = col.length() - col.null_count
        if bad and first_error is None:
            first_error = col.filter(pc.is_valid(col))[0].as_py()
        n_errors += bad
    # summarize_scores only counts the non-None entries of its errors list
    summary = summarize_scores(cosine, truncated, ["error"] * n_errors)
    summary["scale"] = scale
    if source is not None:
        summary["input"] = {"spec": source.describe(), "kind": source.kind, "units": len(source.units()),
                            "fingerprint": source.fingerprint()}
    if provenance is not None:
        summary["provenance"] = provenance
    return summary, first_error

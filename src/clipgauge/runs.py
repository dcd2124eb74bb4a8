"""Score an input into an output: the one run driver behind ``clipgauge score`` and :func:`clipgauge.score`.

``source → engine (local or Ray) → score_rows → sharded run (a results folder, or the staging folder of a results
file) → summary``. Every option works with every output and both engines, and every run resumes after a crash.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engines import ENGINES
from .errors import EngineError, LanguageWarning, UsageError
from .pipeline.finalize import finalize_run
from .pipeline.plan import ScoreOptions, ScoringPlan, build_metrics, needs_prompts
from .pipeline.summary import summarize_run
from .sinks.faults import run_writing
from .sinks.file import consolidate, remove_staging, staging_folder
from .sinks.results import results_format
from .sinks.sharded import ShardedRun, is_folder_output, is_run_folder
from .sinks.summary import SUMMARY_FILE, summary_path, write_summary
from .sources.detect import open_source
from .sources.shards import RowSource

FINGERPRINT_VERSION = 2
#: image paths decoded while the models load (see ``Scorer(prefetch=)``)
PREFETCH_ROWS = 1024


@dataclass
class ScoreResult:
    """A finished run: where its results are (None when not kept), its summary, and the first row error."""

    output: Path | None
    summary: dict[str, Any]
    first_error: str | None
    resumed: bool
    shards_written: int
    #: per model spec, what it cost in this process (load, images/s, memory: ``pipeline/timing.py``)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_errors(self) -> int:
        return int(self.summary["errors"])


def score(
    input_spec: str | Path,
    out: str | Path | None = None,
    options: ScoreOptions | None = None,
    *,
    engine: str = "local",
    shard_size: int = 10_000,
    resume: bool = True,
    image_column: str | None = None,
    prompt_column: str | None = None,
    ray: Any = None,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
) -> ScoreResult:
    """Score every row of *input_spec* (manifest, image folder, WebDataset, Parquet, HF dataset) with the metrics
    of *options*, into *out*: a results file (``.jsonl``/``.csv``/``.tsv``/``.parquet`` or a registered format, plus
    ``OUT.summary.json``), a results folder (Parquet parts + ``_summary.json``), or None (summary only).

    Re-running the same call after a crash continues where the run stopped (*resume*; ``False`` starts over).
    *progress(total)* returns an ``update(n)`` function (``total`` None while the row count is unknown).
    Raises :class:`~clipgauge.errors.UsageError` for bad input or options, :class:`~clipgauge.errors.RowError`
    at the first broken row with ``options.strict``, :class:`~clipgauge.errors.EngineError` when a run cannot
    finish (its committed work is kept).
    """
    options = options or ScoreOptions()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine '{engine}' (choose from {', '.join(ENGINES)})")
    if shard_size < 1:
        raise UsageError("the shard size must be >= 1")
    folder_out = out is not None and is_folder_output(out)
    if out is not None and not folder_out:
        results_format(out)
    source = open_source(input_spec, image_column=image_column, prompt_column=prompt_column,
                         require_prompt=needs_prompts(build_metrics(options)), max_image_bytes=options.max_image_bytes)
    folder = None if out is None else (Path(out) if folder_out else staging_folder(out))
    fresh = folder is None or not is_run_folder(folder) or not resume
    # image files of the first rows are decoded while the models load (a resumed run starts elsewhere)
    prefetch = _first_images(source) if engine == "local" and source.kind == "manifest" and fresh else None
    driver = options if engine == "local" else options.with_(device="cpu", precision="fp32", cache_dir=None)
    plan = ScoringPlan(driver, prefetch=prefetch, resolve_path=getattr(source, "resolve_path", None))
    check_columns(plan, source)
    plan.load()
    for scorer in plan.embedders.values():
        scorer.encoder.start_weights_hash()  # needed by the first commit: hash while the first rows are scored
    temporary = None
    if folder is None:
        temporary = tempfile.TemporaryDirectory(prefix="clipgauge-run-")
        folder = Path(temporary.name) / "run"

    def fingerprint() -> dict[str, Any]:
        return {"version": FINGERPRINT_VERSION, **plan.fingerprint(), "input": source.fingerprint()}

    def provenance() -> dict[str, Any]:
        prov = plan.provenance()
        if engine == "ray":
            from .scoring.precision import PRECISION_EFFECTS

            prov.update(precision=options.precision, precision_effect=PRECISION_EFFECTS[options.precision],
                        device="ray actors", embedding_cache=None)
        return prov

    where = {"spec": _absolute(str(input_spec)), "image_column": image_column, "prompt_column": prompt_column}
    try:
        with ShardedRun(folder, fingerprint, shard_size=shard_size, resume=resume, provenance=provenance,
                        input=where) as run:
            before = len(run.committed)
            schema = plan.output_schema(source.schema())
            if run.unit_rows is None and source.kind == "manifest":  # counting is one cheap pass
                run.set_unit_rows(source.units(), source.count_rows())
            if run.rows is None or run.pending():
                total = None if run.rows is None else sum(run.shard_rows(k) for k in run.pending())
                update = progress(total) if progress is not None else None
                if engine == "local":
                    from .engines.local import run_local
                    from .scoring.cpu_threads import adaptive_threads

                    with adaptive_threads():  # this run owns the process's compute
                        run_local(source, run, plan, schema, progress=update)
                else:
                    from .engines.ray_engine import run_ray

                    run_ray(source, run, options, schema, ray_options=ray, progress=update)
            missing = run.pending()
            if missing:
                raise EngineError(f"shards {missing[:5]} were not written; run the same command again to finish them")
            run.verify()
            finalize_run(run.folder, plan)
            summary, first_error = summarize_run(run.folder, plan)
            summary["input"] = input_description(source)
            summary["provenance"] = run.doc.get("provenance") or provenance()
            if options.decode != "cpu" and engine == "local" and plan.primary_model in plan.embedders:
                # the stored provenance counted the first part's fallbacks; the summary counts this process's rows
                summary["provenance"] = {**summary["provenance"],
                                         "decode": plan.embedder(plan.primary_model).provenance()["decode"]}
            primary = plan.embedders.get(plan.primary_model)
            text = summary["provenance"].get("text") or {}
            if engine == "local" and primary is not None and "languages" in text:
                # likewise the rows' languages, where the model counts them: those this process embedded
                summary["provenance"] = {**summary["provenance"],
                                         "text": {**text, "languages": primary.language_tally.provenance()}}
            summary["run"] = {"shards": run.n_shards, "shard_size": run.shard_size, "engine": engine,
                              "resumed_from_shards": before}
            if folder_out:
                summary["run"]["folder"] = str(run.folder)
            run.finish(summary)
            written = len(run.committed) - before
        if out is not None and not folder_out:
            with run_writing(folder, out):  # a fault: one line, the parts kept for the same command to finish
                consolidate(folder, out)
                write_summary(summary_path(out), summary)
            remove_staging(folder)
    finally:
        plan.close()
        if temporary is not None:
            temporary.cleanup()
    language_warning = (summary.get("language") or {}).get("warning")
    if language_warning:  # once per run; the CLI prints it as one line on stderr
        warnings.warn(language_warning, LanguageWarning, stacklevel=2)
    output = None if out is None else Path(out)
    return ScoreResult(output=output, summary=summary, first_error=first_error, resumed=before > 0,
                       shards_written=written, timings=plan.timings.to_dict())


def check_columns(plan: ScoringPlan, source: RowSource) -> None:
    """Every column a metric reads (references) must be in the input: :class:`UsageError` before any work."""
    names = list(source.schema().names)
    for need in plan.needs:
        if need.column is not None and need.column not in names:
            raise UsageError(f"the input has no '{need.column}' column (columns: {', '.join(names) or 'none'})")


def input_description(source: RowSource) -> dict[str, Any]:
    """The summary's ``input``: what was scored (and, for manifests, the folder its image paths are relative to)."""
    fingerprint = source.fingerprint()
    out: dict[str, Any] = {"spec": source.describe(), "kind": source.kind, "units": len(source.units()),
                           "fingerprint": fingerprint}
    if source.kind == "manifest":
        out.update(manifest=source.describe(), sha256=fingerprint.get("sha256"))
        base = getattr(source, "base_dir", None)
        out["base_dir"] = str(base) if base is not None else None
    return out


def _first_images(source: RowSource) -> list[Any]:
    """The image paths of the first rows (decoded while the models load); nothing for non-file images."""
    try:
        rows = list(itertools.islice(source.rows(), PREFETCH_ROWS))
    except Exception:  # noqa: BLE001 - only a speed-up: the run itself reports any problem
        return []
    return [None if r.error else r.image for r in rows]


def _absolute(spec: str) -> str:
    """*spec* (a path or a brace/glob pattern) made absolute, so the run manifest can reopen it from anywhere."""
    return str(Path(os.path.abspath(os.path.expanduser(spec))))


__all__ = ["ENGINES", "SUMMARY_FILE", "ScoreResult", "score"]

"""The Ray engine: Ray Data reads shards on CPU tasks and scores them on a pool of actors.

Pipeline (one Ray Dataset, streamed)::

    from_items(pending shard numbers)                     one block per shard
      → map_batches(read_shard)        CPU tasks          the shard's rows from the source (tar/Parquet I/O)
      → map_batches(ScoreActor, concurrency=N)            N actors, each loads the model once, on its GPU
                                                           (or CPU); decodes images in its threads and
                                                           scores with clipgauge's Scorer
      → iter_batches() on the driver                      rows gathered per shard; a complete shard is
                                                           committed by the same atomic sharded writer

Rows travel from the read tasks to the actors, and results back to the driver, as Arrow columns: images as
their compressed file bytes (about 10× smaller than decoded pixel tensors) or paths, the carried fields typed by
the source's schema. Every actor runs exactly the local engine's scoring step (``score_rows``), so the results
are the local engine's. ``ray`` is imported only here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import EngineError, UsageError
from ..metrics.needs import registered_needs
from ..pipeline.plan import ScoreOptions
from ..sinks.sharded import ShardedRun
from ..sources.shards import RowSource, Selection, SourceRow
from .local import check_shard
from .options import RayOptions

#: rows per batch handed from the read tasks to the actors
READ_BATCH_ROWS = 64
#: CPUs reserved per read task (reading is I/O-bound; decoding happens in the actors)
READ_TASK_CPUS = 0.25


def run_ray(source: RowSource, run: ShardedRun, score_options: ScoreOptions, schema, *,
            ray_options: RayOptions | None = None, progress: Callable[[int], None] | None = None) -> None:
    """Score the pending shards of *run* on a Ray cluster (a local one when no address is given); *schema* is
    the output schema (``ScoringPlan.output_schema``)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("the Ray engine needs Ray Data: pip install 'clipgauge[ray]'",
                         cli="--engine ray needs Ray Data: pip install 'clipgauge[ray]'") from None

    options = ray_options or RayOptions()
    started = _connect(ray, options.address)
    _quiet(ray)
    try:
        workers, gpus = _plan_actors(ray, options)  # refuse impossible requests before any work
        if run.unit_rows is None:
            run.set_unit_rows(source.units(), _count_units(ray, source))
        pending = run.pending()
        if not pending:
            return
        if score_options.device == "auto":
            score_options = score_options.with_(device="cuda" if gpus else "cpu")
        score_options = score_options.resolve()  # the metric classes travel with the options: no registry
        _by_value(ray, score_options)
        _score(ray, source, run, pending, score_options, schema, workers, gpus, options.cpus_per_worker, progress)
    finally:
        if started:
            ray.shutdown()


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at *address* (``auto``, ``ray://…``), else ``RAY_ADDRESS``, else start a local one."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    except ConnectionError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}") from None
    return True


def _quiet(ray) -> None:
    """clipgauge shows its own progress bar: no Ray Data bars or per-execution log lines."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _count_units(ray, source: RowSource) -> list[int]:
    """Rows per input unit; tar files (header scans) are counted in parallel Ray tasks."""
    n = len(source.units())
    if source.kind != "webdataset" or n == 1:
        return source.count_rows()
    count = ray.remote(num_cpus=READ_TASK_CPUS)(_unit_rows)
    ref = ray.put(source)
    return [int(c) for c in ray.get([count.remote(ref, u) for u in range(n)])]


def _unit_rows(source: RowSource, unit: int) -> int:
    return source.unit_rows(unit)


def _plan_actors(ray, options: RayOptions) -> tuple[int, float]:
    """(actors, GPUs per actor): defaults are one actor per GPU, or one CPU actor; checked against the cluster."""
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    per_gpu = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if per_gpu < 0 or options.cpus_per_worker < 0:
        raise UsageError("GPUs and CPUs per Ray worker must be >= 0",
                         cli="--num-gpus-per-worker and --cpus-per-worker must be >= 0")
    workers = options.workers or (max(1, int(gpus // per_gpu)) if per_gpu else 1)
    if per_gpu and workers * per_gpu > gpus:
        need = f"{workers} Ray workers × {per_gpu:g} GPUs need {workers * per_gpu:g} GPUs; the cluster has {gpus:g}"
        raise UsageError(f"{need} (use fewer workers or GPUs per worker, or 0 GPUs for CPU)",
                         cli=f"{need} (lower --ray-workers or --num-gpus-per-worker, or use 0 for CPU)")
    if workers * options.cpus_per_worker + READ_TASK_CPUS > cpus:
        need = (f"{workers} Ray workers × {options.cpus_per_worker:g} CPUs leave no CPU for reading on a cluster "
                f"with {cpus:g} CPUs")
        raise UsageError(f"{need} (use fewer workers or CPUs per worker)",
                         cli=f"{need} (lower --ray-workers or --cpus-per-worker)")
    return workers, per_gpu


def _by_value(ray, options: ScoreOptions) -> None:
    """Metric classes from outside clipgauge (a plugin, a script, a test) are sent to the actors by value, so
    that an actor's process need not be able to import their module."""
    for cls in [c for c, _ in options.resolved()] + registered_needs():
        module = sys.modules.get(cls.__module__)
        if module is not None and not cls.__module__.startswith("clipgauge."):
            ray.cloudpickle.register_pickle_by_value(module)


def _score(ray, source: RowSource, run: ShardedRun, pending: list[int], score_options: ScoreOptions, schema,
           workers: int, gpus: float, cpus: float, progress: Callable[[int], None] | None) -> None:
    import pyarrow as pa

    size = run.shard_size
    batch = max(READ_BATCH_ROWS, 4 * int(score_options.batch_size))
    ds = ray.data.from_items([{"shard": k} for k in pending], override_num_blocks=len(pending))
    # at most 2 shards being read per actor: bounds the partly gathered shards held on the driver
    readers = _tasks(ray, min(2 * workers, len(pending)))
    ds = ds.map_batches(read_shards, batch_size=1, num_cpus=READ_TASK_CPUS, compute=readers, batch_format="pyarrow",
                        fn_kwargs={"source": source, "counts": run.unit_rows, "shard_size": size})
    ds = ds.map_batches(ScoreActor, batch_size=batch, compute=ray.data.ActorPoolStrategy(size=workers),
                        num_gpus=gpus or None, num_cpus=cpus, batch_format="pyarrow",
                        fn_constructor_kwargs={"options": score_options, "schema": schema, "source": source,
                                               "need_kinds": registered_needs()})
    buffers: dict[int, list] = {}
    counts: dict[int, int] = {}
    try:
        for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            shards = out.column("_shard").to_pylist()
            out = out.drop_columns(["_shard"])
            for shard in sorted(set(shards)):
                mask = pa.array([s == shard for s in shards])
                part = out.filter(mask).cast(schema)
                buffers.setdefault(shard, []).append(part)
                counts[shard] = counts.get(shard, 0) + part.num_rows
                if counts[shard] == run.shard_rows(shard):
                    table = pa.concat_tables(buffers.pop(shard)).sort_by("row_id")
                    check_shard(shard, table.column("row_id").to_pylist(), run)
                    run.commit(shard, table)
                    if progress is not None:
                        progress(counts.pop(shard))
    except (UsageError, EngineError):
        raise
    except Exception as exc:  # noqa: BLE001 - any Ray failure: keep what is committed, say how to resume
        raise EngineError(f"the Ray job failed ({' '.join(str(exc).split())[:300]}); {len(run.committed)} shards "
                          f"are committed: run the same command again to finish the rest") from exc
    if buffers:
        raise EngineError(f"shards {sorted(buffers)[:5]} came back incomplete; run the same command again")


def _tasks(ray, size: int):
    """A task pool of *size* concurrent tasks (``TaskPoolStrategy`` appeared in Ray 2.4x)."""
    strategy = getattr(ray.data, "TaskPoolStrategy", None)
    return strategy(size=size) if strategy is not None else None


def read_shards(batch, *, source: RowSource, counts: list[int], shard_size: int) -> Iterator[Any]:
    """Ray read task: the rows of the given shard(s) as Arrow batches of :data:`READ_BATCH_ROWS` rows."""
    fields = source.schema()
    for shard in batch.column("shard").to_pylist():
        stop = (shard + 1) * shard_size
        rows: list[SourceRow] = []
        for row in source.rows(Selection(shard_size, frozenset({shard})), counts=counts):
            if row.index >= stop:
                break
            if row.skipped:
                continue
            rows.append(row)
            if len(rows) >= READ_BATCH_ROWS:
                yield rows_to_arrow(shard, rows, fields)
                rows = []
        if rows:
            yield rows_to_arrow(shard, rows, fields)


def rows_to_arrow(shard: int, rows: list[SourceRow], fields) -> Any:
    """Source rows as an Arrow table: ids, image bytes or path, prompt, error, and the carried fields (``f:NAME``)."""
    import pyarrow as pa

    from ..pipeline.tables import arrow_column

    prompts = [r.prompt if r.prompt is None or isinstance(r.prompt, str) else None for r in rows]
    errors = [r.error or (None if r.prompt is None or isinstance(r.prompt, str)
                          else f"prompt is not text (got {type(r.prompt).__name__})") for r in rows]
    columns = {
        "_shard": pa.array([shard] * len(rows), pa.int64()),
        "_index": pa.array([r.index for r in rows], pa.int64()),
        "_source": pa.array([r.source for r in rows], pa.string()),
        "_image_bytes": pa.array([r.image if isinstance(r.image, bytes) else None for r in rows], pa.binary()),
        "_image_path": pa.array([str(r.image) if isinstance(r.image, (str, Path)) else None for r in rows],
                                pa.string()),
        "_prompt": pa.array(prompts, pa.string()),
        "_error": pa.array(errors, pa.string()),
    }
    for f in fields:
        columns[f"f:{f.name}"] = arrow_column([r.fields.get(f.name) for r in rows], f.type)
    return pa.table(columns)


def arrow_to_rows(table) -> list[SourceRow]:
    """The inverse of :func:`rows_to_arrow` (the shard column aside)."""
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    names = [n[2:] for n in table.column_names if n.startswith("f:")]
    rows = []
    for i in range(table.num_rows):
        image = cols["_image_bytes"][i]
        if image is None and cols["_image_path"][i] is not None:
            image = Path(cols["_image_path"][i])
        rows.append(SourceRow(cols["_index"][i], cols["_source"][i], {n: cols[f"f:{n}"][i] for n in names},
                              image=image, prompt=cols["_prompt"][i], error=cols["_error"][i]))
    return rows


class ScoreActor:
    """One Ray actor: loads the run's models once (on its GPU when it has one) and scores batches of rows."""

    def __init__(self, options: ScoreOptions, schema, source: RowSource, need_kinds: tuple = ()) -> None:
        from ..metrics.needs import register_need
        from ..pipeline.plan import ScoringPlan
        from ..scoring.cpu_threads import adaptive_threads_on

        adaptive_threads_on()  # the actor's process is clipgauge's
        for kind in need_kinds:  # need kinds registered by the driver's code (a plugin, a script, a test)
            register_need(kind, replace=True)
        self.plan = ScoringPlan(options, resolve_path=getattr(source, "resolve_path", None)).load()
        self.schema = schema

    def __call__(self, batch):
        import pyarrow as pa

        from ..pipeline.score import score_rows

        rows = arrow_to_rows(batch)
        table = score_rows(self.plan, rows, self.schema)
        return table.append_column("_shard", pa.array(batch.column("_shard").to_pylist(), pa.int64()))

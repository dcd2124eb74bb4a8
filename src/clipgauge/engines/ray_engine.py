"""The Ray engine: Ray Data reads shards on CPU tasks and scores them on a pool of actors.

Pipeline (one Ray Dataset, streamed)::

    from_items(pending shard numbers)                     one block per shard
      → map_batches(read_shard)        CPU tasks          the shard's rows from the source (tar/Parquet I/O)
      → map_batches(ScoreActor, concurrency=N)            N actors, each loads the model once, on its GPU
                                                           (or CPU); decodes images in its threads and
                                                           scores with clipgauge's Scorer
      → iter_batches() on the driver                      rows gathered per shard; a complete shard is
                                                           committed by the same atomic sharded writer

Images travel from the read tasks to the actors as their compressed file bytes (about 10× smaller than
decoded pixel tensors), and every actor runs exactly the local engine's scoring code, so the scores are
the local engine's. ``ray`` is imported only here.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import UsageError
from ..sinks.sharded import ShardedRun, output_schema, records_table
from ..sources.shards import RowSource, Selection
from . import EngineError, RayOptions

#: rows per batch handed from the read tasks to the actors
READ_BATCH_ROWS = 64
#: CPUs reserved per read task (reading is I/O-bound; decoding happens in the actors)
READ_TASK_CPUS = 0.25


def run_ray(source: RowSource, run: ShardedRun, scorer_kwargs: dict[str, Any], *, scale: str = "cosine",
            embeddings_dim: int | None = None, options: RayOptions | None = None,
            progress: Callable[[int], None] | None = None) -> None:
    """Score the pending shards of *run* on a Ray cluster (a local one when no address is given)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("--engine ray needs Ray Data: pip install 'clipgauge[ray]'") from None

    options = options or RayOptions()
    started = _connect(ray, options.address)
    _quiet(ray)
    try:
        workers, gpus = _plan_actors(ray, options)  # refuse impossible requests before any work
        if run.unit_rows is None:
            run.set_unit_rows(source.units(), _count_units(ray, source))
        pending = run.pending()
        if not pending:
            return
        kwargs = dict(scorer_kwargs)
        if kwargs.get("device", "auto") == "auto":
            kwargs["device"] = "cuda" if gpus else "cpu"
        _score(ray, source, run, pending, kwargs, scale, embeddings_dim, workers, gpus, options.cpus_per_worker,
               progress)
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
        raise UsageError("--num-gpus-per-worker and --cpus-per-worker must be >= 0")
    workers = options.workers or (max(1, int(gpus // per_gpu)) if per_gpu else 1)
    if per_gpu and workers * per_gpu > gpus:
        raise UsageError(f"{workers} Ray workers × {per_gpu:g} GPUs need {workers * per_gpu:g} GPUs; the cluster has "
                         f"{gpus:g} (lower --ray-workers or --num-gpus-per-worker, or use 0 for CPU)")
    if workers * options.cpus_per_worker + READ_TASK_CPUS > cpus:
        raise UsageError(f"{workers} Ray workers × {options.cpus_per_worker:g} CPUs leave no CPU for reading on a "
                         f"cluster with {cpus:g} CPUs (lower --ray-workers or --cpus-per-worker)")
    return workers, per_gpu


def _score(ray, source: RowSource, run: ShardedRun, pending: list[int], scorer_kwargs: dict[str, Any], scale: str,
           embeddings_dim: int | None, workers: int, gpus: float, cpus: float,
           progress: Callable[[int], None] | None) -> None:
    size = run.shard_size
    batch = max(READ_BATCH_ROWS, 4 * int(scorer_kwargs.get("batch_size", 32)))
    ds = ray.data.from_items([{"shard": k} for k in pending], override_num_blocks=len(pending))
    # at most 2 shards being read per actor: bounds the partly gathered shards held on the driver
    readers = _tasks(ray, min(2 * workers, len(pending)))
    ds = ds.map_batches(read_shards, batch_size=1, num_cpus=READ_TASK_CPUS, compute=readers,
                        fn_kwargs={"source": source, "counts": run.unit_rows, "shard_size": size})
    ds = ds.map_batches(ScoreActor, batch_size=batch, compute=ray.data.ActorPoolStrategy(size=workers),
                        num_gpus=gpus or None, num_cpus=cpus,
                        fn_constructor_kwargs={"scorer_kwargs": scorer_kwargs, "scale": scale,
                                               "embeddings_dim": embeddings_dim})
    schema = output_schema(source.schema(), embeddings_dim)
    buffers: dict[int, list[tuple[dict, Any, Any]]] = {}
    try:
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for shard, blob in zip(out["shard"], out["result"]):
                shard = int(shard)
                rows = buffers.setdefault(shard, [])
                rows.append(pickle.loads(blob))
                if len(rows) == run.shard_rows(shard):
                    _commit(run, shard, buffers.pop(shard), schema, embeddings_dim)
                    if progress is not None:
                        progress(len(rows))
    except (UsageError, EngineError):
        raise
    except Exception as exc:  # noqa: BLE001 - any Ray failure: keep what is committed, say how to resume
        raise EngineError(f"the Ray job failed ({' '.join(str(exc).split())[:300]}); {len(run.committed)} shards "
                          f"are committed — re-run the same command to finish the rest") from exc
    if buffers:
        raise EngineError(f"shards {sorted(buffers)[:5]} came back incomplete; re-run the same command")


def _tasks(ray, size: int):
    """A task pool of *size* concurrent tasks (``TaskPoolStrategy`` appeared in Ray 2.4x)."""
    strategy = getattr(ray.data, "TaskPoolStrategy", None)
    return strategy(size=size) if strategy is not None else None


def _commit(run: ShardedRun, shard: int, rows: list[tuple[dict, Any, Any]], schema, dim: int | None) -> None:
    rows.sort(key=lambda r: r[0]["row_id"])
    ids = [r[0]["row_id"] for r in rows]
    start = shard * run.shard_size
    if ids != list(range(start, start + len(ids))):
        raise EngineError(f"shard {shard} came back with rows {ids[:3]}…, expected {start}…; the input changed?")
    img = txt = None
    if dim is not None:
        img = np.stack([r[1] for r in rows])
        txt = np.stack([r[2] for r in rows])
    run.commit(shard, records_table([r[0] for r in rows], schema, img, txt))


def read_shards(batch: dict[str, np.ndarray], *, source: RowSource, counts: list[int],
                shard_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Ray read task: the rows of the given shard(s), pickled, in batches of :data:`READ_BATCH_ROWS`."""
    for shard in batch["shard"]:
        shard = int(shard)
        stop = (shard + 1) * shard_size
        rows = []
        for row in source.rows(Selection(shard_size, frozenset({shard})), counts=counts):
            if row.index >= stop:
                break
            if row.skipped:
                continue
            rows.append(row)
            if len(rows) >= READ_BATCH_ROWS:
                yield _pack(shard, rows)
                rows = []
        if rows:
            yield _pack(shard, rows)


def _pack(shard: int, rows: list) -> dict[str, np.ndarray]:
    blobs = np.empty(len(rows), dtype=object)
    blobs[:] = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in rows]
    return {"shard": np.full(len(rows), shard, dtype=np.int64), "row": blobs}


class ScoreActor:
    """One Ray actor: loads the model once (on its GPU when it has one) and scores batches of rows."""

    def __init__(self, scorer_kwargs: dict[str, Any], scale: str, embeddings_dim: int | None) -> None:
        from ..scoring.scorer import Scorer

        self.scorer = Scorer(**scorer_kwargs)
        self.scale = scale
        self.embeddings_dim = embeddings_dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .batch import score_rows

        rows = [pickle.loads(b) for b in batch["row"]]
        scored = score_rows(self.scorer, rows, scale=self.scale, embeddings_dim=self.embeddings_dim)
        out = np.empty(len(rows), dtype=object)
        for i, rec in enumerate(scored.records):
            img = scored.image_embeddings[i] if scored.image_embeddings is not None else None
            txt = scored.text_embeddings[i] if scored.text_embeddings is not None else None
            out[i] = pickle.dumps((rec, img, txt), protocol=pickle.HIGHEST_PROTOCOL)
        return {"shard": np.asarray(batch["shard"], dtype=np.int64), "result": out}

"""The local engine: stream the source in order, score in chunks in this process, commit shard by shard."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import EngineError
from ..pipeline.plan import ScoringPlan
from ..pipeline.score import score_rows
from ..sinks.sharded import ShardedRun
from ..sources.shards import RowSource, Selection, SourceRow


def run_local(source: RowSource, run: ShardedRun, plan: ScoringPlan, schema,
              progress: Callable[[int], None] | None = None) -> None:
    """Score every row of *source* not yet committed in *run*, committing each shard as soon as it is scored.

    Rows are scored in chunks of 16 model batches, across shard boundaries, so that image decoding overlaps the
    model however small the shards are, and memory stays bounded however large they are; committed shards are
    walked past without reading their images.
    """
    import pyarrow as pa

    size = run.shard_size
    selection = Selection(size, exclude=frozenset(run.committed))
    chunk = 16 * plan.options.batch_size
    counts: dict[int, int] = {}
    pending: list[SourceRow] = []
    scored: dict[int, list] = {}  # shard → scored tables (slices) not committed yet
    closed: list[int] = []  # shards all of whose rows have been read

    def score_pending() -> None:
        if not pending:
            return
        table = score_rows(plan, pending, schema)
        start = 0
        while start < len(pending):  # split the chunk's table at shard boundaries
            shard = pending[start].index // size
            stop = start
            while stop < len(pending) and pending[stop].index // size == shard:
                stop += 1
            scored.setdefault(shard, []).append(table.slice(start, stop - start))
            start = stop
        if progress is not None:
            progress(len(pending))
        pending.clear()

    def commit_closed() -> None:
        for shard in closed:
            table = pa.concat_tables(scored.pop(shard, [])) if shard in scored else schema.empty_table()
            check_shard(shard, table.column("row_id").to_pylist(), run)
            run.commit(shard, table)
        closed.clear()

    current: int | None = None
    for row in source.rows(selection, counts=run.unit_rows, on_unit=counts.__setitem__):
        if row.skipped:
            continue
        shard = row.index // size
        if current is not None and shard != current:
            closed.append(current)
        current = shard
        pending.append(row)
        if len(pending) >= chunk:
            score_pending()
            commit_closed()
    if current is not None:
        closed.append(current)
    score_pending()
    commit_closed()
    if run.unit_rows is None:
        run.set_unit_rows(source.units(), [counts[u] for u in range(len(source.units()))])


def check_shard(shard: int, ids: list[int], run: ShardedRun) -> None:
    """Shard *shard* must hold rows shard·size, shard·size + 1, … in order, all of them when the total is known."""
    size = run.shard_size
    start = shard * size
    expected = run.shard_rows(shard) if run.rows is not None else None
    if ids != list(range(start, start + len(ids))) or len(ids) > size or (expected is not None
                                                                          and len(ids) != expected):
        raise EngineError(f"shard {shard}: got rows {ids[:1]}…{ids[-1:]} ({len(ids)}), expected "
                          f"{expected if expected is not None else '≤ ' + str(size)} from {start}: "
                          f"the input changed during the run")

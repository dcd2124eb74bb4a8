"""The local engine: stream the source in order, score it in this process, commit each shard as soon as it is scored."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import EngineError
from ..pipeline.plan import ScoringPlan
from ..pipeline.score import score_stream
from ..sinks.sharded import ShardedRun
from ..sources.shards import RowSource, Selection


def run_local(source: RowSource, run: ShardedRun, plan: ScoringPlan, schema,
              progress: Callable[[int], None] | None = None) -> None:
    """Score every row of *source* not yet committed in *run*, committing each shard as soon as its last row is
    scored (a kill loses at most the rows in flight).

    Rows are scored in groups of at most 16 model batches that never span two shards, while the images are decoded
    and embedded by streams that run ahead across groups and shards (:func:`score_stream`), so decoding overlaps
    the model however small the shards are, and memory stays bounded however large they are. Committed shards are
    walked past without reading their images; *progress* advances every model batch.
    """
    import pyarrow as pa

    size = run.shard_size
    selection = Selection(size, exclude=frozenset(run.committed))
    counts: dict[int, int] = {}
    rows = (row for row in source.rows(selection, counts=run.unit_rows, on_unit=counts.__setitem__)
            if not row.skipped)
    scored: list = []  # tables of the shard being scored
    for group, table in score_stream(plan, rows, schema, part=lambda row: row.index // size, progress=progress):
        scored.append(table)
        if group.closes:
            shard = group.rows[0].index // size
            table = scored[0] if len(scored) == 1 else pa.concat_tables(scored)
            scored = []
            check_shard(shard, table.column("row_id").to_pylist(), run)
            run.commit(shard, table)
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

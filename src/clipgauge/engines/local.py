"""The local engine: stream the source in order, score in chunks in this process, commit shard by shard."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..scoring.scorer import Scorer
from ..sinks.sharded import ShardedRun, output_schema, records_table
from ..sources.shards import RowSource, Selection, SourceRow
from .batch import score_rows


def run_local(source: RowSource, run: ShardedRun, scorer: Scorer, *, scale: str = "cosine",
              embeddings_dim: int | None = None, progress: Callable[[int], None] | None = None) -> None:
    """Score every row of *source* not yet committed in *run*, committing each shard as soon as it is scored.

    Rows are scored in chunks of 16 model batches, across shard boundaries, so that
    image decoding overlaps the model however small the shards are, and memory stays bounded however large
    they are; committed shards are walked past without reading their images.
    """
    size = run.shard_size
    selection = Selection(size, exclude=frozenset(run.committed))
    schema = output_schema(source.schema(), embeddings_dim)
    chunk = 16 * scorer.batch_size
    counts: dict[int, int] = {}
    pending: list[SourceRow] = []
    scored: dict[int, list[tuple[dict, np.ndarray | None, np.ndarray | None]]] = {}
    closed: list[int] = []  # shards all of whose rows have been read
    current: int | None = None

    def score_pending() -> None:
        if not pending:
            return
        out = score_rows(scorer, pending, scale=scale, embeddings_dim=embeddings_dim)
        for i, (row, rec) in enumerate(zip(pending, out.records)):
            img = out.image_embeddings[i] if out.image_embeddings is not None else None
            txt = out.text_embeddings[i] if out.text_embeddings is not None else None
            scored.setdefault(row.index // size, []).append((rec, img, txt))
        if progress is not None:
            progress(len(pending))
        pending.clear()

    def commit_closed() -> None:
        for shard in closed:
            rows = scored.pop(shard, [])
            records = [r[0] for r in rows]
            _check_shard(shard, records, size, run)
            img = txt = None
            if embeddings_dim is not None:
                img, txt = np.stack([r[1] for r in rows]), np.stack([r[2] for r in rows])
            run.commit(shard, records_table(records, schema, img, txt))
        closed.clear()

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


def _check_shard(shard: int, records: list[dict], size: int, run: ShardedRun) -> None:
    """Shard *shard* must hold rows shard·size, shard·size + 1, … in order, all of them when the total is known."""
    ids = [r["row_id"] for r in records]
    start = shard * size
    expected = run.shard_rows(shard) if run.rows is not None else None
    if ids != list(range(start, start + len(ids))) or len(ids) > size or (expected is not None
                                                                          and len(ids) != expected):
        raise RuntimeError(f"shard {shard}: got rows {ids[:1]}…{ids[-1:]} ({len(ids)}), expected "
                           f"{expected if expected is not None else '≤ ' + str(size)} from {start}: "
                           f"the input changed during the run")

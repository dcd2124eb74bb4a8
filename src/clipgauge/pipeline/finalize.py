"""Run columns: values computed over the whole run once every row is scored (``Metric.finalize``), such as
PickScore's preference probability within the rows of one prompt.

The committed parts hold these columns as nulls; here they are computed from the metrics' columns over all rows
(read back one column at a time) and each part is rewritten with them, atomically. It is deterministic, so a
resumed or re-run finish simply computes them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..sinks.faults import run_writing
from ..sinks.sharded import list_parts, read_column, read_part, write_part
from .plan import GROUP_COLUMN, ScoringPlan


def finalize_run(folder: str | Path, plan: ScoringPlan) -> None:
    """Fill in the run columns of every part in *folder* (nothing to do when no metric declares any)."""
    import pyarrow as pa

    todo = [m for m in plan.metrics if m.run_columns()]
    if not todo:
        return
    groups: list[Any] = []
    for _, path in list_parts(folder).items():
        groups.extend(read_part(path, [GROUP_COLUMN]).column(GROUP_COLUMN).to_pylist())
    filled: dict[str, np.ndarray] = {}
    for metric in todo:
        values: dict[str, Any] = {c.name: read_column(folder, c.name) for c in metric.columns()
                                  if c.type == "float64"}
        for name in getattr(metric, "finalize_inputs", list)():  # other columns it reads, as Python values
            values[name] = _python_column(folder, name)
        key = getattr(metric, "group_column", GROUP_COLUMN)  # e.g. diversity:group=prompt_id
        out = metric.finalize(values, groups if key == GROUP_COLUMN else _python_column(folder, key))
        for c in metric.run_columns():
            filled[c.name] = np.asarray(out[c.name], dtype=np.float64)
    start = 0
    for shard, path in list_parts(folder).items():
        table = read_part(path)
        n = table.num_rows
        for name, column in filled.items():
            part = column[start:start + n]
            i = table.schema.get_field_index(name)
            array = pa.array([None if np.isnan(v) else float(v) for v in part], type=table.schema.field(i).type)
            table = table.set_column(i, table.schema.field(i), array)
        with run_writing(folder, path):
            write_part(folder, shard, table, durable=True)
        start += n


def _python_column(folder: str | Path, name: str) -> list[Any]:
    """Column *name* of every part as Python values, in input order; :class:`UsageError` when the results lack it
    (a metric's ``group=COLUMN`` naming a column the input does not have)."""
    from ..errors import UsageError

    out: list[Any] = []
    for _, path in list_parts(folder).items():
        import pyarrow.parquet as pq

        if name not in pq.read_schema(path).names:
            raise UsageError(f"the results have no column '{name}' (a column of the input, e.g. prompt_id)")
        out.extend(read_part(path, [name]).column(name).to_pylist())
    return out

"""The one scoring step: rows → decode → embeddings → metrics → Arrow tables of results.

Every engine (local, each Ray actor) and every output (file, folder) goes through :func:`score_stream` (or
:func:`score_rows`, the same over a list of rows as one group). Each
need of the active metrics is computed once per batch by its registered kind (:mod:`clipgauge.metrics.needs`), in
the kind's phase: each distinct model embeds each image and each distinct prompt once, and with several image needs
(models, or a metric that needs pixels) each image is decoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import RowError
from ..metrics.base import MetricBatch, Need
from ..metrics.needs import AFTER, ROWS, need_kind
from ..sources.shards import SourceRow
from .plan import EMBEDDING_COLUMNS, ERROR_COLUMN, GROUP_COLUMN, ScoringPlan
from .stream import Group, fill_images, groups
from .tables import arrow_column, embedding_column


def prompt_error(prompt: Any) -> str | None:
    """Why *prompt* cannot be embedded before trying (None when it can be tried): missing, or not text. A prompt
    the model then refuses gets its own reason (``prompt cannot be tokenized: …``, :mod:`clipgauge.scoring.texts`)."""
    from ..scoring.texts import prompt_problem  # the one definition

    return prompt_problem(prompt)


def score_rows(plan: ScoringPlan, rows: Sequence[SourceRow], schema) -> Any:
    """Score *rows* (no placeholders) into one ``pyarrow.Table`` in *schema* (see ``ScoringPlan.output_schema``):
    :func:`score_stream` over them as one group."""
    tables = [table for _, table in score_stream(plan, rows, schema, group_rows=max(1, len(rows)))]
    if not tables:
        return schema.empty_table()
    import pyarrow as pa

    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def score_stream(plan: ScoringPlan, rows: Iterable[SourceRow], schema, *, group_rows: int | None = None,
                 part: Callable[[SourceRow], Any] | None = None, progress: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[Group, Any]]:
    """The scoring step: *rows* (no placeholders, read lazily) → ``(group, pyarrow.Table in schema)`` per group of
    consecutive rows, in order, each as soon as its last row is scored.

    A group holds at most *group_rows* rows (default: 16 model batches) and never rows of two parts (``part(row)``);
    ``group.closes`` says that no later row belongs to its part. Images are decoded and embedded by streams that run
    ahead across groups (:mod:`.stream`); *progress* is called with a row count every model batch.

    A row broken in the source keeps its reason and gets no values. Otherwise its ``error`` is the first reason
    among its own prompt and image, then the metrics' own reasons (a failing reference sets ``error`` but keeps
    the row's other scores). With ``strict`` the first row with an error raises :class:`RowError`.
    """
    size = group_rows or 16 * plan.options.batch_size
    prepared = (_before_images(plan, g) for g in groups(rows, size, part))
    for group in fill_images(plan, prepared, progress):
        yield group, _table(plan, group, schema)


def _table(plan: ScoringPlan, group: Group, schema) -> Any:
    """The group's results: its needs' reasons, the metrics' values, the carried fields, as one table."""
    import pyarrow as pa

    rows, batch = group.rows, group.batch
    for need in plan.needs:  # e.g. reference images: after the rows' own images (which may use the prefetch)
        kind = need_kind(need.kind)
        if kind.phase_of(need) == AFTER:
            kind.compute(plan, need, batch)
    n = len(rows)
    errors: list[str | None] = [r.error for r in rows]
    for need in plan.needs:  # own prompt first, then own image (the order of ScoringPlan.needs)
        if need.own_row:
            errors = [e or x for e, x in zip(errors, batch.errors[need])]
    values: dict[str, Any] = {}
    for metric in plan.metrics:
        out = metric.compute(batch)
        values.update(out.columns)
        if out.errors is not None:
            errors = [e or x for e, x in zip(errors, out.errors)]
    if plan.options.strict:
        bad = next((i for i, e in enumerate(errors) if e), None)
        if bad is not None:
            raise RowError(errors[bad], rows[bad].index)
    types = {f.name: f.type for f in schema}
    broken = np.fromiter((r.error is not None for r in rows), dtype=bool, count=n)  # broken in the source
    columns = []
    for f in schema:
        name = f.name
        if name == "row_id":
            col = pa.array([r.index for r in rows], pa.int64())
        elif name == "row_source":
            col = pa.array([r.source for r in rows], pa.string())
        elif name == ERROR_COLUMN:
            col = pa.array(errors, pa.string())
        elif name in EMBEDDING_COLUMNS:
            kind = "image_embedding" if name == "image_embedding" else "text_embedding"
            col = embedding_column(batch.values.get(Need(kind, plan.primary_model)), n, types[name].list_size)
        elif name in plan.run_column_names:
            col = pa.nulls(n, types[name])  # filled in when the whole run is scored
        elif name in values:
            col = _numeric_column(values[name], broken, types[name])
            if col is None:
                cells = _cells(values[name], rows)
                if pa.types.is_boolean(types[name]):  # flags are never null: False where a row has no value
                    cells = [bool(c) if c is not None else False for c in cells]
                col = arrow_column(cells, types[name])
        elif name == GROUP_COLUMN and not any(name in r.fields for r in rows):  # the prompt, for run columns
            col = arrow_column([r.prompt if isinstance(r.prompt, str) else None for r in rows], types[name])
        else:
            col = arrow_column([r.fields.get(name) for r in rows], types[name])
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _numeric_column(values: Any, broken: np.ndarray, type_) -> Any:
    """A numeric or boolean metric column straight from its numpy array (None for anything else): NaN and rows
    broken in the source are null, except in a boolean column, which is never null (False there)."""
    import pyarrow as pa

    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind not in "fiub":
        return None
    if pa.types.is_boolean(type_):
        if values.dtype.kind != "b":
            return None
        return pa.array(values & ~broken, type=type_)
    if not (pa.types.is_floating(type_) or pa.types.is_integer(type_)):
        return None
    mask = broken | np.isnan(values) if values.dtype.kind == "f" else broken
    try:
        return pa.array(values, type=type_, mask=mask)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _cells(values: Any, rows: Sequence[SourceRow]) -> list[Any]:
    """A metric column as Python values: NaN → None; a row broken in the source has no values at all."""
    out = []
    for v, r in zip(list(values), rows):
        if r.error is not None or isinstance(v, (float, np.floating)) and np.isnan(v):
            out.append(None)
        else:
            out.append(v.item() if hasattr(v, "item") else v)
    return out


# --------------------------------------------------------------------------- needs

def _before_images(plan: ScoringPlan, group: Group) -> Group:
    """The needs computed before a group's images (:data:`~clipgauge.metrics.needs.ROWS`: its prompts, text
    columns, languages …); a reason of a need that blocks (a bad prompt) means the row's image is not read. Runs
    ahead of the group being scored (the image streams read ahead)."""
    rows = group.rows
    batch = group.batch = MetricBatch(rows)
    blocked: list[str | None] = [r.error for r in rows]  # rows whose image need not be read
    for need in plan.needs:
        kind = need_kind(need.kind)
        if kind.phase_of(need) == ROWS:
            kind.compute(plan, need, batch)
            if kind.blocks(need):
                blocked = [b or e for b, e in zip(blocked, batch.errors[need])]
    group.blocked = blocked
    return group

"""``clipgauge filter``: one streaming implementation for every input (a results file of any format, or a results
folder of any size) and every output (any registered sink), in both directions of "better".

The decision is :class:`clipgauge.stats.filtering.FilterRule` over the Arrow batches of a
:class:`~clipgauge.sinks.reader.ResultsReader`:

* ``min_score``: keep rows scoring ≥ the threshold in the chosen scale (≤ it where lower is better, as in the
  ``angle`` scale) — one pass;
* ``top_fraction``: keep the best ``ceil(f · n)`` scored rows (the lowest where lower is better), ties at the cut kept
  in input order — two passes: the score column alone is read first (8 bytes per row in memory: 100 M rows ≈
  0.8 GB) to find the cut, then the batches are streamed and the kept rows written.

Rows with an ``error`` are never kept. The kept rows go to the sink registered for ``out`` (and the others to the one
for ``dropped``): a results file (``.jsonl``, ``.csv``, ``.parquet`` …), a folder of Parquet parts, or WebDataset
tars (:mod:`clipgauge.sinks.filter_outputs`). Every output is written to a temporary name and renamed when complete; a
fault while writing raises :class:`~clipgauge.errors.OutputError` naming the file and the cause, and leaves no
half-written file under its final name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import writing
from ..errors import UsageError
from ..stats.filtering import FilterResult, FilterRule, batch_scores
from ..stats.records import SCALED_COLUMN
from .reader import ResultsReader
from .sink import Sink, open_sink, sink_for


def filter_results(results: str | Path, out: str | Path, *, min_score: float | None = None,
                   top_fraction: float | None = None, scale: str = "cosine", column: str | None = None,
                   higher_is_better: bool = True, dropped: str | Path | None = None) -> FilterResult:
    """Filter the results file or folder *results* into *out* (and the rows not kept into *dropped*), each output's
    sink chosen by its name; the result counts the rows (``kept`` is not listed: they were streamed)."""
    rule = FilterRule(min_score=min_score, top_fraction=top_fraction, scale=scale, column=column,
                      higher_is_better=higher_is_better)
    for target in (out, dropped):
        if target is not None:
            sink_for(target, results_file=False)  # an unsupported output: one line before anything is read
    reader = ResultsReader(results)
    name = column or SCALED_COLUMN
    if reader.is_folder:
        names = reader.column_names()
        if not names:
            raise UsageError("the results folder has no parts")
        if name not in names:
            raise UsageError(f"results in {results} have no '{name}' column")
    wanted = [name] + (["error"] if reader.is_folder and "error" in reader.column_names() else [])
    if rule.needs_all_scores:  # pass 1: the score column alone
        values = [batch_scores(t, scale=scale, column=column) for _, t in reader.tables(wanted)]
        rule.prepare(np.concatenate(values) if values else np.zeros(0))
    sinks: list[Sink] = []
    try:
        for part, table in reader.tables():  # pass 2: stream, decide, write
            if not sinks:
                sinks = [open_sink(t, table.schema, results_file=False, run=reader.run) for t in (out, dropped) if t]
            keep = rule.keep(batch_scores(table, scale=scale, column=column))
            for sink, rows in zip(sinks, (keep, ~keep)):
                with writing(sink.path):  # a sink's OSError: one OutputError line naming its output
                    sink.write(table.filter(rows), part)
        for sink in sinks:
            with writing(sink.path):
                sink.commit()
            sink.committed = True
    finally:
        for sink in sinks:
            sink.close()
    return rule.result()

"""``clipgauge filter`` over a sharded results folder: streaming, part by part, any size.

The same rules as :func:`clipgauge.stats.filtering.filter_rows` (and the same result on the same rows):

* ``min_score``: keep rows scoring ≥ the threshold in the chosen scale — one pass;
* ``top_fraction``: keep the best ``ceil(f · n)`` scored rows, ties at the cut kept in input order — two
  passes: the score column alone is read first (8 bytes per row in memory: 100 M rows ≈ 0.8 GB) to find the
  cut, then the parts are streamed and the kept rows written.

Rows with an ``error`` are never kept. Where the kept rows go, by ``out``:

===========================  ===================================================================
``kept.parquet``             one Parquet file (one row group per input part), all result columns
``kept`` (no extension)      a folder of Parquet parts mirroring the input parts (``part-NNNNN``)
``kept.tar``                 one WebDataset tar: per row ``ID.<jpg|png|…>`` (the original image
                             bytes, re-read from the run's input), ``ID.txt`` (the prompt) and
                             ``ID.json`` (the result record without embeddings); ``ID`` = row_id
``kept/%05d.tar``            WebDataset, one tar per input part (the ``%`` pattern is the part number)
===========================  ===================================================================

Every output file is written to a temporary name and renamed when complete. A fault while writing (a full disk, a
read-only folder …) raises :class:`~clipgauge.errors.OutputError` naming the file and the cause, and leaves no
half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import AtomicFile, write_atomic, writing
from ..errors import DecodeError, UsageError
from ..image_files import read_image_file
from ..scoring.scales import check_scale, to_scale
from ..stats.filtering import FilterResult
from .sharded import EMBEDDING_COLUMNS, SUCCESS_FILE, list_parts, part_name, read_part, read_run
from .summary import json_safe


@dataclass
class ShardFilterResult(FilterResult):
    """A :class:`FilterResult` whose kept rows were streamed to disk: ``kept`` is empty, ``kept_count`` counts."""

    kept_count: int = 0

    @property
    def n_kept(self) -> int:
        return self.kept_count


def filter_folder(folder: str | Path, out: str | Path, *, min_score: float | None = None,
                  top_fraction: float | None = None, scale: str = "cosine", column: str | None = None,
                  dropped: str | Path | None = None) -> ShardFilterResult:
    """Filter the sharded results *folder* into *out* (format by its name, see the module doc)."""
    if (min_score is None) == (top_fraction is None):
        raise UsageError("give exactly one of a minimum score or a top fraction",
                         cli="give exactly one of --min-score or --top-fraction")
    if top_fraction is not None and not 0.0 < top_fraction <= 1.0:
        raise UsageError(f"the top fraction must be in (0, 1], got {top_fraction}",
                         cli=f"--top-fraction must be in (0, 1], got {top_fraction}")
    check_scale(scale)
    if column is not None and scale != "cosine":
        raise UsageError("a score column's values are used as they are; they cannot be converted to another scale",
                         cli="--column uses a column's values as they are; it cannot be combined with --scale")
    folder = Path(folder)
    doc = read_run(folder)
    if not (folder / SUCCESS_FILE).exists():
        raise UsageError(f"the run in {folder} is not complete: finish it first (re-run the same 'clipgauge score')")
    parts = list_parts(folder)
    name = column or "cosine"
    import pyarrow.parquet as pq

    first = next(iter(parts.values()), None)
    if first is not None and name not in pq.read_schema(first).names:
        raise UsageError(f"results in {folder} have no '{name}' column")

    rows = n_scored = 0
    cut, ties_to_keep = (float(min_score), math.inf) if min_score is not None else (math.nan, 0)
    if top_fraction is not None:  # pass 1: the score column alone
        values = np.concatenate([_values(t, name, column, scale) for t in _tables(parts, [name, "error"])] or
                                [np.zeros(0)])
        scored = values[~np.isnan(values)]
        k = math.ceil(top_fraction * scored.size - 1e-9)
        if k:
            cut = float(-np.partition(-scored, k - 1)[k - 1])  # the k-th largest score
            ties_to_keep = k - int(np.sum(scored > cut))
    writers = [_writer(Path(out), doc, parts)] + ([_writer(Path(dropped), doc, parts)] if dropped else [])
    kept = dropped_low = 0
    ties_seen = 0
    try:
        for shard, table in _tables(parts):  # pass 2: stream, decide, write
            v = _values((shard, table), name, column, scale)
            ok = ~np.isnan(v)
            if min_score is not None:
                keep = ok & (v >= cut)
            else:
                keep = ok & (v > cut) if not math.isnan(cut) else np.zeros(v.size, dtype=bool)
                ties = np.flatnonzero(ok & (v == cut))
                take = ties[: max(0, ties_to_keep - ties_seen)]
                keep[take] = True
                ties_seen += take.size
            rows += v.size
            n_scored += int(ok.sum())
            kept += int(keep.sum())
            dropped_low += int((ok & ~keep).sum())
            writers[0].write(shard, table.filter(keep))
            if dropped:
                writers[1].write(shard, table.filter(~keep))
        for w in writers:
            w.close()
    finally:
        for w in writers:
            w.abort()
    mode = "min-score" if min_score is not None else "top-fraction"
    return ShardFilterResult(mode=mode, scale=scale, column=column, min_score=min_score, top_fraction=top_fraction,
                             rows=rows, kept=[], dropped_low=dropped_low, unscored=rows - n_scored,
                             threshold=cut, kept_count=kept)


def _tables(parts: dict[int, Path], columns: list[str] | None = None):
    for shard, path in parts.items():
        yield shard, read_part(path, columns)


def _values(item, name: str, column: str | None, scale: str) -> np.ndarray:
    """Scores of one part in *scale* (or *column* as is); NaN where the row has an error or no value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _, table = item
    col = table.column(name)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        col = pc.cast(col, pa.float64(), safe=False)
    v = col.to_numpy().astype(np.float64, copy=True)
    if "error" in table.column_names:
        v[table.column("error").is_valid().to_numpy(zero_copy_only=False)] = np.nan
    return v if column is not None else to_scale(v, scale)


# --------------------------------------------------------------------------- writers

def _writer(out: Path, doc: dict[str, Any], parts: dict[int, Path]):
    text = str(out)
    if text.lower().endswith(".tar"):
        return _TarWriter(out, doc, per_part="%" in out.name)
    if out.suffix.lower() == ".parquet":
        return _ParquetFileWriter(out)
    if out.suffix == "":
        return _ParquetFolderWriter(out)
    raise UsageError(f"unsupported filter output '{out}' for a results folder (use .parquet, a folder, .tar or a "
                     f"%-pattern like kept/%05d.tar)")


class _ParquetFileWriter:
    def __init__(self, out: Path) -> None:
        self.target, self.writer = AtomicFile(out), None

    def write(self, shard: int, table) -> None:
        import pyarrow.parquet as pq

        with writing(self.target.final):
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.target.tmp, table.schema)
            self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:
            raise UsageError("the results folder has no parts")
        with writing(self.target.final):
            self.writer.close()
        self.writer = None
        self.target.commit()

    def abort(self) -> None:
        if self.writer is not None:
            _quietly(self.writer.close)
            self.writer = None
        self.target.abort()


class _ParquetFolderWriter:
    def __init__(self, out: Path) -> None:
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"the output folder {out} is not empty", cli=f"--out {out} is not empty")
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
        self.out = out

    def write(self, shard: int, table) -> None:
        import pyarrow.parquet as pq

        with AtomicFile(self.out / part_name(shard)) as target:
            pq.write_table(table, target.tmp)

    def close(self) -> None:
        write_atomic(self.out / SUCCESS_FILE, "")

    def abort(self) -> None:
        pass


class _TarWriter:
    """WebDataset output; images are re-read from the run's input (each part's rows, streamed)."""

    def __init__(self, out: Path, doc: dict[str, Any], *, per_part: bool) -> None:
        self.out, self.doc, self.per_part = out, doc, per_part
        self.source = _open_run_input(doc)
        self.tar: tarfile.TarFile | None = None
        self.target: AtomicFile | None = None

    def _open(self, path: Path) -> None:
        self._finish()
        self.target = AtomicFile(path)
        with writing(path):
            self.tar = tarfile.open(self.target.tmp, "w")  # noqa: SIM115 - closed in _finish()/abort()

    def _finish(self) -> None:
        if self.tar is not None:
            with writing(self.target.final):
                self.tar.close()
            self.target.commit()
            self.tar = None

    def write(self, shard: int, table) -> None:
        from ..sources.shards import Selection

        if self.per_part:
            self._open(self.out.with_name(self.out.name % shard))
        elif self.tar is None:
            self._open(self.out)
        if table.num_rows == 0:
            return
        keep = {r["row_id"]: r for r in table.drop_columns(
            [c for c in EMBEDDING_COLUMNS if c in table.column_names]).to_pylist()}
        size = int(self.doc["shard_size"])
        for row in self.source.rows(Selection(size, frozenset({shard})), counts=self.doc.get("unit_rows")):
            if row.index >= (shard + 1) * size:
                break
            rec = keep.get(row.index)
            if rec is None or row.skipped:
                continue
            key = f"{row.index:012d}"
            try:
                data = row.image if isinstance(row.image, bytes) else read_image_file(row.image)
            except (TypeError, DecodeError):  # not a regular file (never a pipe or device), too large, gone
                data = None  # a row without a readable image (only among dropped rows): text and record only
            if data is not None:
                self._add(f"{key}.{_image_ext(data, row.image)}", data)
            prompt = rec.get("prompt") if isinstance(rec.get("prompt"), str) else row.prompt
            self._add(f"{key}.txt", (prompt or "").encode("utf-8"))
            self._add(f"{key}.json", json.dumps(json_safe(rec), ensure_ascii=False, default=str).encode("utf-8"))

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        with writing(self.target.final):
            self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        if self.tar is None and not self.per_part:
            self._open(self.out)
        self._finish()

    def abort(self) -> None:
        if self.tar is not None:
            _quietly(self.tar.close)
            self.tar = None
        if self.target is not None:
            self.target.abort()


def _quietly(close) -> None:  # noqa: ANN001 - a close() method
    """Close a writer being abandoned: a second fault (the disk is still full) must not hide the first."""
    with contextlib.suppress(OSError):
        close()


def _open_run_input(doc: dict[str, Any]):
    """Reopen the input of a run from its ``_run.json`` document (to copy the kept rows' images)."""
    from ..sources.detect import open_source

    where = doc.get("input") or {}
    if not where.get("spec"):
        raise UsageError("the run manifest does not say where its input is")
    return open_source(where["spec"], image_column=where.get("image_column"), prompt_column=where.get("prompt_column"))


_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"), (b"BM", "bmp"), (b"II*\x00", "tif"),
          (b"MM\x00*", "tif"))


def _image_ext(data: bytes, source: Any) -> str:
    """The image's file extension: from its path, else from its first bytes."""
    suffix = Path(source).suffix if isinstance(source, (str, Path)) else ""
    if suffix:
        return suffix.lower().lstrip(".")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), "bin")

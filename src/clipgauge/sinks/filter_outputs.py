"""The filter's outputs besides the results files: a folder of Parquet parts and WebDataset tars, as registered
:class:`~clipgauge.sinks.sink.Sink` classes (``results_file = False``: ``filter --out`` takes them, ``score`` does
not, and they are not read back as results).

===========================  ===================================================================
``kept`` (no extension)      a folder of Parquet parts mirroring the input parts (``part-NNNNN``)
``kept.tar``                 one WebDataset tar: per row ``ID.<jpg|png|…>`` (the original image
                             bytes, re-read from the run's input), ``ID.txt`` (the prompt) and
                             ``ID.json`` (the result record without embeddings); ``ID`` = row_id
``kept/%05d.tar``            WebDataset, one tar per input part (the ``%`` pattern is the part number)
===========================  ===================================================================

A tar needs the input of a results folder (its ``_run.json`` says where the images are).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from ..atomic import AtomicFile, write_atomic, writing
from ..errors import DecodeError, UsageError
from ..image_files import read_image_file
from .sharded import EMBEDDING_COLUMNS, SUCCESS_FILE, write_part
from .sink import Sink, register_sink
from .summary import json_safe


@register_sink
class ParquetFolderSink(Sink):
    """A folder of Parquet parts (``part-NNNNN.parquet``, numbered as the input's parts) and ``_SUCCESS``."""

    name = "parquet folder"
    results_file = False

    @classmethod
    def matches(cls, path: str | Path) -> bool:
        return Path(path).suffix == ""

    def __init__(self, path: str | Path, schema: Any = None, *, run: dict[str, Any] | None = None) -> None:
        super().__init__(path, schema, run=run)
        if self.path.exists() and any(self.path.iterdir()):
            raise UsageError(f"the output folder {self.path} is not empty", cli=f"--out {self.path} is not empty")
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        self.parts = 0

    def write(self, table: Any, part: int | None = None) -> None:
        write_part(self.path, self.parts if part is None else part, table)
        self.parts += 1

    def commit(self) -> None:
        write_atomic(self.path / SUCCESS_FILE, "")
        self.committed = True


@register_sink
class WebDatasetSink(Sink):
    """WebDataset output; images are re-read from the run's input (each part's rows, streamed)."""

    name = "webdataset"
    extensions = (".tar",)
    results_file = False

    def __init__(self, path: str | Path, schema: Any = None, *, run: dict[str, Any] | None = None) -> None:
        super().__init__(path, schema, run=run)
        if run is None:
            raise UsageError("a WebDataset output copies each kept row's image from the run's input: filter a "
                             "results folder (score --out DIR) into it")
        self.out, self.doc, self.per_part = self.path, run, "%" in self.path.name
        self.source = _open_run_input(run)
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

    def write(self, table: Any, part: int | None = None) -> None:
        from ..sources.shards import Selection

        shard = int(part or 0)

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

    def commit(self) -> None:
        if self.tar is None and not self.per_part:
            self._open(self.out)
        self._finish()
        self.committed = True

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

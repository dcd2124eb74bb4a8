"""Parquet files with images (bytes or paths) and a caption column as a streaming row source.

Covers the layout img2dataset writes (``jpg`` bytes, ``caption``, ``key``, ``url``, ``status`` …), a
Hugging Face ``Image`` column (a struct of ``bytes`` and ``path``) and plain manifests with an ``image``
path column (relative paths resolve against the Parquet file's folder, as for manifests).

* image column: ``image_column``, else the first of ``image jpg jpeg png webp img`` present;
* prompt column: ``prompt_column``, else the first of ``prompt caption txt text`` present;
* carried fields: every column except an image column holding bytes
  (:class:`~clipgauge.sources.tables.TableColumns`, shared with the Hugging Face dataset source).

Files are read one row group at a time, in batches, with only the needed columns; row groups holding no
selected row are skipped from the file's metadata. A file that cannot be opened gives one row with an
``error``; a row group that cannot be read gives one error row per row it holds (from the metadata), so
row indices never shift. Strings that are not valid UTF-8 are read with U+FFFD replacements (:mod:`clipgauge.text`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..text import arrow_columns
from .shards import RowSource, Selection, SourceRow, common_root, files_fingerprint, relative_name, short_error
from .tables import TableColumns

BATCH_ROWS = 256


class ParquetSource(RowSource):
    """Rows of one or more Parquet files, in file order then row order."""

    kind = "parquet"

    def __init__(self, spec: str, paths: list[Path], *, image_column: str | None = None,
                 prompt_column: str | None = None, require_prompt: bool = True) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.spec = spec
        self.paths = [Path(p) for p in paths]
        root = common_root(self.paths)
        self.names = [relative_name(p, root) for p in self.paths]
        schemas = []
        for p in self.paths:
            try:
                schemas.append(pq.read_schema(p))
            except Exception:  # noqa: BLE001 - reported as that file's error row when read
                continue
        if not schemas:
            raise UsageError(f"no readable Parquet file in {spec}")
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UsageError(f"the Parquet files of {spec} have incompatible schemas: {short_error(exc)}") from None
        self.columns = TableColumns(schema, f"Parquet input {spec}", image_column=image_column,
                                    prompt_column=prompt_column, require_prompt=require_prompt)
        self.image_column, self.prompt_column = self.columns.image, self.columns.prompt

    def units(self) -> list[str]:
        return self.names

    def unit_rows(self, unit: int) -> int:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.paths[unit]).metadata.num_rows
        except Exception:  # noqa: BLE001 - an unreadable file is one error row
            return 1

    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        import pyarrow.parquet as pq

        path, name = self.paths[unit], self.names[unit]
        try:
            pf = pq.ParquetFile(path)
            meta = pf.metadata
        except FileNotFoundError:
            yield SourceRow(first, f"{name}:", {}, error=f"Parquet file not found: {name}")
            return
        except Exception as exc:  # noqa: BLE001 - corrupt file: one error row
            yield SourceRow(first, f"{name}:", {}, error=f"corrupt Parquet file {name}: {short_error(exc)}")
            return
        columns = [c for c in self.columns.carried.names if c in pf.schema_arrow.names]
        if self.image_column not in columns and self.image_column in pf.schema_arrow.names:
            columns.append(self.image_column)
        start = first
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if not selection.wants_range(start, start + n):
                for i in range(n):
                    yield SourceRow(start + i, skipped=True)
            else:
                yield from self._row_group(pf, g, columns, name, path.parent, first, start, n, selection)
            start += n

    def _row_group(self, pf, g: int, columns: list[str], name: str, base: Path, first: int, start: int, n: int,
                   selection: Selection) -> Iterator[SourceRow]:
        """Rows ``[start, start + n)`` (global indices) of row group *g*; *first* = the file's first index."""
        i = start
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[g], columns=columns):
                cols = arrow_columns(batch)  # text that is not UTF-8: U+FFFD
                for j in range(batch.num_rows):
                    if i >= start + n:
                        break
                    yield self._row(i, f"{name}:{i - first}", base, {c: cols[c][j] for c in cols}, selection)
                    i += 1
        except Exception as exc:  # noqa: BLE001 - the rest of this row group becomes error rows
            reason = f"corrupt Parquet row group {g} of {name}: {short_error(exc)}"
            for k in range(i, start + n):
                yield SourceRow(k, f"{name}:{k - first}", {}, error=reason, skipped=not selection.wants(k))
            return
        for k in range(i, start + n):  # fewer rows than the metadata says
            yield SourceRow(k, f"{name}:{k - first}", {}, error=f"row missing from {name}",
                            skipped=not selection.wants(k))

    def _row(self, index: int, source: str, base: Path, cells: dict[str, Any], selection: Selection) -> SourceRow:
        if not selection.wants(index):
            return SourceRow(index, skipped=True)
        return self.columns.row(index, source, cells, base)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "units": len(self.paths), "image_column": self.image_column,
                "prompt_column": self.prompt_column, "files_sha256": files_fingerprint(self.names, self.paths)}

    def schema(self):
        return self.columns.carried

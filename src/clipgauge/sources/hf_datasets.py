"""A Hugging Face ``datasets`` dataset saved with ``save_to_disk`` as a streaming row source.

The dataset is memory-mapped (``datasets.load_from_disk``), never loaded: rows are read in slices of
:data:`BATCH_ROWS` as Arrow, so ``Image`` columns arrive as their stored bytes (or file paths) and are
decoded by clipgauge's own decoder, like every other input. Columns are chosen as for Parquet files
(:class:`~clipgauge.sources.tables.TableColumns`: ``image``/``img``/… and ``prompt``/``caption``/``text``/…).
A ``DatasetDict`` folder holding one split is read as that split; with several, pass the split's sub-folder
(``DIR/train``). Needs the optional ``datasets`` package (``pip install 'clipgauge[hf]'``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..text import arrow_columns
from .shards import RowSource, Selection, SourceRow
from .tables import TableColumns

BATCH_ROWS = 256


def is_hf_dataset_dir(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


class HFDatasetSource(RowSource):
    """Rows of a ``datasets.Dataset`` on disk, in its order (one unit)."""

    kind = "hf-dataset"

    def __init__(self, path: Path, *, image_column: str | None = None, prompt_column: str | None = None,
                 require_prompt: bool = True) -> None:
        self.spec = str(path)
        self.path = Path(path)
        self.split: str | None = None
        if (self.path / "dataset_dict.json").is_file():
            splits = json.loads((self.path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
            if len(splits) != 1:
                raise UsageError(f"{path} holds the splits {', '.join(splits)}: pass one of them, e.g. "
                                 f"{self.path / splits[0]}" if splits else f"{path} holds no split")
            self.split = splits[0]
        ds = self._dataset()
        schema = ds.features.arrow_schema
        self.columns = TableColumns(schema, f"dataset {path}", image_column=image_column,
                                    prompt_column=prompt_column, require_prompt=require_prompt)
        self.image_column, self.prompt_column = self.columns.image, self.columns.prompt
        self.n_rows = len(ds)

    def _dataset(self):
        ds = getattr(self, "_cache_ds", None)
        if ds is None:
            try:
                import datasets
            except ImportError:
                raise UsageError("reading a Hugging Face dataset needs the 'datasets' package: "
                                 "pip install 'clipgauge[hf]'") from None
            try:
                ds = datasets.load_from_disk(str(self.path / self.split if self.split else self.path))
            except Exception as exc:  # noqa: BLE001 - one line for the user
                raise UsageError(f"cannot load dataset {self.path}: {' '.join(str(exc).split())[:200]}") from None
            self._cache_ds = ds = ds.with_format("arrow")
        return ds

    def units(self) -> list[str]:
        return [self.path.name + (f"/{self.split}" if self.split else "")]

    def unit_rows(self, unit: int) -> int:
        return len(self._dataset())

    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        ds = self._dataset()
        name = self.units()[0]
        n = len(ds)
        base = self.path
        columns = list(dict.fromkeys([*self.columns.carried.names, self.image_column]))
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            if not selection.wants_range(first + start, first + stop):
                for i in range(start, stop):
                    yield SourceRow(first + i, skipped=True)
                continue
            cols = arrow_columns(ds[start:stop].select(columns))  # not UTF-8: U+FFFD
            for j, i in enumerate(range(start, stop)):
                if not selection.wants(first + i):
                    yield SourceRow(first + i, skipped=True)
                    continue
                yield self.columns.row(first + i, f"{name}:{i}", {c: cols[c][j] for c in columns}, base)

    def fingerprint(self) -> dict[str, Any]:
        folder = self.path / self.split if self.split else self.path
        h = hashlib.sha256()
        for p in sorted(folder.glob("*.arrow")):
            h.update(f"{p.name}|{p.stat().st_size}\n".encode())
        state = folder / "state.json"
        if state.is_file():
            h.update(json.loads(state.read_text(encoding="utf-8")).get("_fingerprint", "").encode())
        return {"kind": self.kind, "rows": self.n_rows,
                "image_column": self.image_column, "prompt_column": self.prompt_column, "sha256": h.hexdigest()}

    def schema(self):
        return self.columns.carried

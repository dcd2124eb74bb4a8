"""Read the rows to score.

A manifest is a JSONL, CSV, TSV or Parquet file with (at least) an ``image`` column — a path relative to the
manifest's folder, or absolute — and a ``prompt`` column; every other column is carried through untouched. A
folder of images with a ``.txt`` sidecar per image (same stem) is read as a manifest too. Broken rows are kept,
each with the reason in ``SourceRow.error``. Invalid UTF-8 and lone surrogates become U+FFFD (:mod:`clipgauge.text`).

Manifests are streamed: :class:`ManifestReader` opens one with a single cheap pass (its kind, columns and row count;
an unreadable, unsupported or column-less manifest is a one-line :class:`ManifestError` there, before anything is
scored) and then reads its rows lazily, one at a time — JSONL/CSV/TSV line by line, Parquet by record batches, a
folder from its sorted listing. :func:`read_manifest` collects the same rows in a list (small inputs).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import DecodeError, ManifestError
from ..image_files import read_sidecar
from ..paths import image_path, resolve_path
from ..text import arrow_rows, clean_value
from .column_types import ColumnTypes, infer_arrow_types
from .shards import SourceRow

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}

#: Parquet rows decoded at a time
BATCH_ROWS = 4096

Record = tuple[dict[str, Any], "str | None"]  # a row's fields and why it is broken (None: not broken)
Wanted = Callable[[int], bool]  # which rows (0-based positions in the manifest) to read in full


@dataclass
class Manifest:
    """A manifest read whole: its rows (``SourceRow``: ``index`` = position, ``source`` = ``NAME:index``)."""

    path: Path
    kind: str
    columns: list[str]
    rows: list[SourceRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths in this manifest are relative to."""
        return _base_dir(self.path, self.kind)

    def resolve(self, value: str) -> Path:
        """A path from a manifest cell: absolute as given, relative against :attr:`base_dir`."""
        return resolve_path(value, self.base_dir)


def read_manifest(path: str | Path, *, image_column: str = "image", prompt_column: str = "prompt") -> Manifest:
    """Read a manifest file or a folder of images with sidecar prompts whole. Raises :class:`ManifestError`."""
    reader = ManifestReader(path, image_column=image_column, prompt_column=prompt_column, infer_types=False)
    rows = list(reader.rows())
    for row in rows:  # streamed rows carry a path as text (cheaper per row); a whole read gives Paths
        row.image = Path(row.image) if isinstance(row.image, str) else row.image
    return Manifest(path=reader.path, kind=reader.kind, columns=list(reader.columns), rows=rows)


class ManifestReader:
    """A manifest opened for streaming (see the module docstring). Holds its path, kind, columns and row count.

    Opening reads the file once in constant memory (JSONL/CSV/TSV: parses every row, for the count, the
    columns and — with *infer_types* — their types; Parquet: its footer; a folder: lists it). Pickles small:
    a folder's listing is dropped and listed again where it is used.
    """

    def __init__(self, path: str | Path, *, image_column: str = "image", prompt_column: str = "prompt",
                 infer_types: bool = True, require_prompt: bool = True) -> None:
        path = Path(path).expanduser()
        self.path = path
        self.image_column = image_column
        self.prompt_column = prompt_column
        #: False where the run needs only images (zero-shot classification): a missing prompt is no error
        self.require_prompt = require_prompt
        self._types: dict[str, Any] | None = None  # column types, once known (small: pickled)
        if path.is_dir():
            self.kind = "folder"
            self.n_rows = len(self.listing())
            self.columns = ["image", "prompt"]
            return
        if not path.exists():
            raise ManifestError(f"manifest not found: {path}")
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise ManifestError(
                f"unsupported manifest format '{path.suffix}' (use .jsonl, .csv, .tsv, .parquet or a folder)"
            )
        self.kind = kind
        with _reading(path):
            self.n_rows, columns, self._types = _SCANS[kind](path, kind, infer_types)
        self.columns = columns
        for needed in (image_column, prompt_column) if require_prompt else (image_column,):
            if needed not in columns:
                raise ManifestError(
                    f"manifest {path.name} has no '{needed}' column (columns: {', '.join(columns) or 'none'})"
                )

    def __len__(self) -> int:
        return self.n_rows

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}

    @property
    def base_dir(self) -> Path:
        """The folder that relative image paths (and other path cells) resolve against."""
        return _base_dir(self.path, self.kind)

    def resolve(self, value: str) -> Path:
        """A path from a manifest cell: absolute as given, relative against :attr:`base_dir`."""
        return resolve_path(value, self.base_dir)

    def listing(self) -> list[str]:
        """A folder's images, relative POSIX paths in path order (cached). :class:`ManifestError` when none."""
        names = getattr(self, "_cache_listing", None)
        if names is None:
            names = self._cache_listing = _folder_listing(self.path)
        return names

    def rows(self, first: int = 0, wanted: Wanted | None = None) -> Iterator[SourceRow]:
        """Every row in order, lazily: ``index`` = *first* + position, ``source`` = ``NAME:position``.

        Rows for which *wanted(index)* is false come as placeholders (``skipped=True``), without being
        parsed (a folder: without reading the sidecar). Raises :class:`ManifestError` if the file cannot be
        read any more.
        """
        name = self.path.name
        local = None if wanted is None else (lambda i: wanted(first + i))
        if self.kind == "folder":
            yield from self._folder_rows(name, first, local)
            return
        base, ic, pc = str(self.path.parent), self.image_column, self.prompt_column
        for i, record in enumerate(_READERS[self.kind](self.path, local)):
            if record is None:
                yield SourceRow(first + i, skipped=True)
            else:
                yield _row(SourceRow(first + i, f"{name}:{i}", record[0], error=record[1]), base, ic, pc,
                           self.require_prompt)

    def records(self) -> Iterator[dict[str, Any]]:
        """Each row's fields, in order (broken rows' too: e.g. ``{"line": 3}`` for an invalid JSON line)."""
        if self.kind == "folder":
            for row in self.rows():
                yield row.fields
        else:
            for record in _READERS[self.kind](self.path, None):
                yield record[0]

    def arrow_types(self) -> dict[str, Any]:
        """Column → the ``pyarrow`` type of its values, as ``pa.array(all values).type`` gives it (``string`` where
        that raises). JSONL/CSV/TSV: found while opening (unless *infer_types* was false); otherwise one pass over
        the values, once. A folder: ``image`` is a string, ``prompt`` a string as soon as one sidecar is readable
        (else null). See :class:`ColumnTypes`."""
        import pyarrow as pa

        if self._types is None:
            if self.kind == "folder":
                has_prompt = any(r.prompt is not None for r in self.rows())
                self._types = {"image": pa.string(), "prompt": pa.string() if has_prompt else pa.null()}
            else:
                self._types = infer_arrow_types(self.columns, self.records())
        return self._types

    def listing_sha256(self) -> str:
        """A folder's identity: SHA-256 of ``json.dumps([[image, prompt], …])`` over its rows, streamed."""
        h = hashlib.sha256(b"[")
        for i, r in enumerate(self.rows()):
            if i:
                h.update(b", ")
            h.update(json.dumps([r.fields.get("image"), r.prompt], default=str).encode())
        h.update(b"]")
        return h.hexdigest()

    def _folder_rows(self, name: str, first: int, wanted: Wanted | None) -> Iterator[SourceRow]:
        folder = self.path
        for i, rel in enumerate(self.listing()):
            if wanted is not None and not wanted(i):
                yield SourceRow(first + i, skipped=True)
                continue
            img = folder / rel
            sidecar = img.with_suffix(".txt")
            row = SourceRow(first + i, f"{name}:{i}", {"image": rel, "prompt": None}, image=img)
            try:  # invalid UTF-8: U+FFFD (clipgauge.text); a pipe or device: the row's error
                prompt = read_sidecar(sidecar)
            except DecodeError as exc:
                row.error = exc.reason
            else:
                if prompt is None:
                    if self.require_prompt:
                        row.error = f"no prompt: sidecar {sidecar.name} is missing"
                else:
                    row.fields["prompt"] = prompt
                    row.prompt = prompt
            yield row


# --------------------------------------------------------------------------- rows


def _base_dir(path: Path, kind: str) -> Path:
    return path if kind == "folder" else path.parent


def _row(row: SourceRow, base: str, image_column: str, prompt_column: str, require_prompt: bool = True
         ) -> SourceRow:
    if row.error:
        return row
    fields = row.fields
    image = fields.get(image_column)
    prompt = fields.get(prompt_column)
    if isinstance(image, str) and image.strip():  # the common case first
        row.image = image_path(image, base)
    elif isinstance(image, str) or _missing(image):
        row.error = f"missing '{image_column}' value"
    else:
        row.error = f"'{image_column}' is not a path (got {type(image).__name__})"
    if row.error is None:
        if isinstance(prompt, str):  # the common case first
            row.prompt = prompt
        elif _missing(prompt):
            if require_prompt:
                row.error = f"missing '{prompt_column}' value"
        else:
            row.error = f"'{prompt_column}' is not text (got {type(prompt).__name__})"
    return row


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a failure to read *path* into a one-line :class:`ManifestError`."""
    try:
        yield
    except ManifestError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. pyarrow errors on a corrupt Parquet file
        raise ManifestError(f"cannot read manifest {path}: {' '.join(str(exc).split())[:200]}") from None


# --------------------------------------------------------------------------- readers: one record per row
# Each yields, per row in order, (fields, error) — or None for a row *wanted* does not want.


_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _jsonl_record(raw: bytes, lineno: int) -> Record:
    # orjson for the common case; what it refuses (NaN, lone surrogates, invalid UTF-8, errors) or reads otherwise
    # (integers of 19+ digits become floats there) goes the json way, its text cleaned as clipgauge.text says
    if lineno > 1 and not _LONG_DIGITS.search(raw):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(obj, dict):
                return obj, None
    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8", "replace")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        if "\ufffd" in line and "\ufffd".encode() not in raw:  # bytes that are neither UTF-8 nor JSON: say so
            return {"line": lineno}, f"line {lineno}: not valid UTF-8"
        return {"line": lineno}, f"line {lineno}: invalid JSON ({exc.msg})"
    if not isinstance(obj, dict):
        return {"line": lineno}, f"line {lineno}: not a JSON object"
    return clean_value(obj), None


def _read_jsonl(path: Path, wanted: Wanted | None = None) -> Iterator[Record | None]:
    with _reading(path), open(path, "rb") as fh:
        i = 0
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            yield _jsonl_record(raw, lineno) if wanted is None or wanted(i) else None
            i += 1


def _scan_records(path: Path, kind: str, infer_types: bool) -> tuple[int, list[str], dict[str, Any] | None]:
    """Rows, columns (keys in order of appearance) and column types of a JSONL/CSV/TSV manifest: one pass."""
    n, seen, types = 0, {}, ColumnTypes() if infer_types else None
    for fields, _error in _READERS[kind](path, None):
        n += 1
        for key in fields:
            if key not in seen:
                seen[key] = None
        if types is not None:
            types.add(fields)
    columns = list(seen)
    return n, columns, None if types is None else types.result(columns)


def _delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[list[str], list[str], int]]:
    """(header, values, line number) for each non-blank row; :class:`ManifestError` without a header."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:  # invalid UTF-8: U+FFFD
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ManifestError(f"manifest {path.name} is empty (no header row)")
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            yield header, values, reader.line_num


def _read_delimited(path: Path, delimiter: str, wanted: Wanted | None = None) -> Iterator[Record | None]:
    with _reading(path):
        for i, (header, values, line_num) in enumerate(_delimited_rows(path, delimiter)):
            if wanted is not None and not wanted(i):
                yield None
                continue
            fields = dict(zip(header, values))
            error = None
            if len(values) != len(header):
                error = f"line {line_num}: {len(values)} fields, header has {len(header)}"
                for col in header[len(values) :]:
                    fields[col] = None
            yield fields, error


def _read_parquet(path: Path, wanted: Wanted | None = None) -> Iterator[Record | None]:
    import pyarrow.parquet as pq

    with _reading(path), pq.ParquetFile(path) as pf:
        start = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            n = batch.num_rows
            if wanted is not None and not any(wanted(start + j) for j in range(n)):
                yield from (None for _ in range(n))
            else:
                for j, rec in enumerate(arrow_rows(batch)):
                    yield (rec, None) if wanted is None or wanted(start + j) else None
            start += n


def _scan_parquet(path: Path, kind: str = "parquet", infer_types: bool = False) -> tuple[int, list[str], None]:
    """Rows and columns of a Parquet manifest from its footer (types: later, by a pass over the values)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        n = pf.metadata.num_rows
        return n, list(dict.fromkeys(pf.schema_arrow.names)) if n else [], None


_READERS: dict[str, Callable[[Path, Wanted | None], Iterator[Record | None]]] = {
    "jsonl": _read_jsonl,
    "csv": lambda p, w=None: _read_delimited(p, ",", w),
    "tsv": lambda p, w=None: _read_delimited(p, "\t", w),
    "parquet": _read_parquet,
}
_SCANS: dict[str, Callable[[Path, str, bool], tuple[int, list[str], dict[str, Any] | None]]] = {
    "jsonl": _scan_records,
    "csv": _scan_records,
    "tsv": _scan_records,
    "parquet": _scan_parquet,
}


def _folder_listing(folder: Path) -> list[str]:
    # only relative names are kept; sorted as the Paths would sort (by path components). Every entry with an image
    # name but a folder is a row: a pipe, device, socket or broken link named x.png is an error row, not left out
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()]
    if not names:
        raise ManifestError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {folder}")
    names.sort(key=lambda s: s.replace("/", "\0"))
    return names

"""Read the rows to score.

A manifest is a JSONL, CSV, TSV or Parquet file with (at least) an ``image`` column — a path
relative to the manifest's folder, or absolute — and a ``prompt`` column; every other column is
carried through untouched. A folder of images with a ``.txt`` sidecar per image (same stem) is
read as a manifest too. Broken rows are kept, each with the reason in ``Row.error``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ManifestError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


@dataclass
class Row:
    """One input row: its original fields, the resolved image path, the prompt, or the error."""

    fields: dict[str, Any]
    image: Path | None = None
    prompt: Any = None
    error: str | None = None


@dataclass
class Manifest:
    path: Path
    kind: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths in this manifest are relative to."""
        return self.path if self.kind == "folder" else self.path.parent

    def resolve(self, value: str) -> Path:
        """A path from a manifest cell: absolute as given, relative against :attr:`base_dir`."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def read_manifest(path: str | Path, *, image_column: str = "image", prompt_column: str = "prompt") -> Manifest:
    """Read a manifest file or a folder of images with sidecar prompts. Raises :class:`ManifestError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_folder(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(
            f"unsupported manifest format '{path.suffix}' (use .jsonl, .csv, .tsv, .parquet or a folder)"
        )
    try:
        records = _READERS[kind](path)
    except ManifestError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. pyarrow errors on a corrupt Parquet file
        raise ManifestError(f"cannot read manifest {path}: {' '.join(str(exc).split())[:200]}") from None
    columns = _columns(records)
    for needed in (image_column, prompt_column):
        if needed not in columns:
            raise ManifestError(
                f"manifest {path.name} has no '{needed}' column (columns: {', '.join(columns) or 'none'})"
            )
    rows = [_row(fields, err, path.parent, image_column, prompt_column) for fields, err in records]
    return Manifest(path=path, kind=kind, columns=columns, rows=rows)


def _columns(records: list[tuple[dict, str | None]]) -> list[str]:
    seen: dict[str, None] = {}
    for fields, _ in records:
        for key in fields:
            seen.setdefault(key, None)
    return list(seen)


def _row(fields: dict, error: str | None, base: Path, image_column: str, prompt_column: str) -> Row:
    row = Row(fields=fields, error=error)
    if error:
        return row
    image = fields.get(image_column)
    prompt = fields.get(prompt_column)
    if _missing(image) or (isinstance(image, str) and not image.strip()):
        row.error = f"missing '{image_column}' value"
    elif not isinstance(image, str):
        row.error = f"'{image_column}' is not a path (got {type(image).__name__})"
    else:
        p = Path(image).expanduser()
        row.image = p if p.is_absolute() else base / p
    if row.error is None:
        if _missing(prompt):
            row.error = f"missing '{prompt_column}' value"
        elif not isinstance(prompt, str):
            row.error = f"'{prompt_column}' is not text (got {type(prompt).__name__})"
        else:
            row.prompt = prompt
    return row


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_jsonl(path: Path) -> list[tuple[dict, str | None]]:
    out: list[tuple[dict, str | None]] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                out.append(({"line": lineno}, f"line {lineno}: not valid UTF-8"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append(({"line": lineno}, f"line {lineno}: invalid JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                out.append(({"line": lineno}, f"line {lineno}: not a JSON object"))
                continue
            out.append((obj, None))
    return out


def _read_delimited(path: Path, delimiter: str) -> list[tuple[dict, str | None]]:
    out: list[tuple[dict, str | None]] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ManifestError(f"manifest {path.name} is empty (no header row)")
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            fields = dict(zip(header, values))
            error = None
            if len(values) != len(header):
                error = f"line {reader.line_num}: {len(values)} fields, header has {len(header)}"
                for col in header[len(values) :]:
                    fields[col] = None
            out.append((fields, error))
    return out


def _read_parquet(path: Path) -> list[tuple[dict, str | None]]:
    import pyarrow.parquet as pq

    return [(rec, None) for rec in pq.read_table(path).to_pylist()]


_READERS = {
    "jsonl": _read_jsonl,
    "csv": lambda p: _read_delimited(p, ","),
    "tsv": lambda p: _read_delimited(p, "\t"),
    "parquet": _read_parquet,
}


def _read_folder(folder: Path) -> Manifest:
    images = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not images:
        raise ManifestError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {folder}")
    rows = []
    for img in images:
        rel = img.relative_to(folder).as_posix()
        sidecar = img.with_suffix(".txt")
        fields: dict[str, Any] = {"image": rel, "prompt": None}
        row = Row(fields=fields, image=img)
        try:
            prompt = sidecar.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            row.error = f"no prompt: sidecar {sidecar.name} is missing"
        except UnicodeDecodeError:
            row.error = f"unreadable prompt: {sidecar.name} is not valid UTF-8"
        except OSError as exc:
            row.error = f"unreadable prompt: {sidecar.name}: {exc.strerror or exc}"
        else:
            fields["prompt"] = prompt
            row.prompt = prompt
        rows.append(row)
    return Manifest(path=folder, kind="folder", columns=["image", "prompt"], rows=rows)

"""Per-row results files: JSONL, CSV/TSV or Parquet, chosen by the file extension.

Every input row is written, in input order, with its original columns plus ``score`` (in the chosen
scale), ``cosine`` (always the raw cosine), ``truncated`` and ``error``. Files are written to a
temporary name and renamed, so a crash never leaves a half-written results file.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..atomic import AtomicFile
from ..errors import UsageError

RESULT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


def results_format(path: str | Path) -> str:
    """The format of a results path from its extension; :class:`UsageError` if unsupported."""
    fmt = RESULT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"unsupported output format '{Path(path).suffix}' (use .jsonl, .csv, .tsv or .parquet)")
    return fmt


def clean_value(value: Any) -> Any:
    """A value as results files hold it: NaN → None, numpy scalars → Python values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return clean_value(value.item())
    return value


def write_results(path: str | Path, records: Iterable[dict[str, Any]], columns: list[str]) -> Path:
    """Write *records* (dicts) with *columns* in that order to *path*, atomically."""
    path = Path(path)
    fmt = results_format(path)
    rows = [{c: clean_value(r.get(c)) for c in columns} for r in records]
    with AtomicFile(path) as target:
        if fmt == "jsonl":
            with open(target.tmp, "w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        elif fmt in ("csv", "tsv"):
            with open(target.tmp, "w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, delimiter="," if fmt == "csv" else "\t")
                writer.writeheader()
                writer.writerows(rows)
        else:
            _write_parquet(target.tmp, rows, columns)
    return path


def _write_parquet(path: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in columns:
        values = [r[c] for r in rows]
        try:
            arrays[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # mixed types in one column (e.g. 7 and "7"): keep every value, as text
            arrays[c] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    pq.write_table(pa.table(arrays), path)


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a results file written by :func:`write_results` back into a list of dicts; a results folder
    (``score --out DIR``) gives all its rows in input order.

    Raises :class:`UsageError` (one line) when the file is missing, unreadable or malformed.
    """
    path = Path(path)
    if path.is_dir():
        from .sharded import read_records

        try:
            return read_records(path)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt part: one line
            raise UsageError(f"cannot read results folder {path}: {' '.join(str(exc).split())[:200]}") from None
    fmt = results_format(path)
    if not path.is_file():
        raise UsageError(f"results file not found: {path}")
    try:
        return _read(path, fmt)
    except Exception as exc:  # noqa: BLE001 - unreadable, not UTF-8, bad JSON, corrupt Parquet: one line
        raise UsageError(f"cannot read results file {path}: {' '.join(str(exc).split())[:200]}") from None


def _read(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t"))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()

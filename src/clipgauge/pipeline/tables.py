"""Arrow columns from Python values: typed as the schema says, never losing a value."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..text import clean_text, clean_value


def arrow_column(values: list[Any], type_):
    """*values* as an Arrow array of *type_*; a value that does not fit (e.g. ``"7"`` among ints) keeps the
    column readable: the column is built as text and cast, or left as text. Text that cannot be encoded (a lone
    surrogate, which the input sources replace but a row made elsewhere may hold) is written with U+FFFD."""
    import pyarrow as pa

    try:
        return pa.array(values, type=type_)
    except UnicodeEncodeError:
        return arrow_column([clean_value(v) for v in values], type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        text = pa.array([None if v is None else clean_text(as_text(v)) for v in values], type=pa.string())
        return text.cast(type_) if not pa.types.is_string(type_) else text


def as_text(value: Any) -> str:
    """A value kept in a text column: text as it is, lists and objects as JSON, anything else as ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def embedding_column(matrix: np.ndarray | None, n: int, dim: int):
    """A fixed-size-list<float16> column from an (N, D) array; rows that hold NaN (no embedding) become nulls."""
    import pyarrow as pa

    if matrix is None:
        matrix = np.full((n, dim), np.nan, dtype=np.float32)
    values = np.ascontiguousarray(matrix, dtype=np.float16)
    missing = np.isnan(values).any(axis=1)
    values = np.where(missing[:, None], 0, values).astype(np.float16)
    flat = pa.array(values.reshape(-1), type=pa.float16())
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(missing))

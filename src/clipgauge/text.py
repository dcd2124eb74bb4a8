"""Text that cannot be encoded, made encodable: the one policy every input source applies to the text it reads.

* A lone UTF-16 surrogate (the valid JSON ``"broken emoji \\ud83d here"``, common in scraped captions) becomes
  U+FFFD (the replacement character); a surrogate pair held as two code points becomes the character it encodes.
* Bytes that are not valid UTF-8 (a sidecar ``.txt``, a CSV, a WebDataset member, a Parquet or Arrow string) are
  decoded with each invalid sequence replaced by U+FFFD (Python's ``errors="replace"``).

The row is then scored on the cleaned text, and the output carries the cleaned text: tokenizers, orjson and
pyarrow all refuse lone surrogates, so one left in a row would stop the run. Clean text costs one
``str.isascii`` (ASCII) or one UTF-8 encoding (other text) and comes back as the same object.
"""

from __future__ import annotations

from typing import Any

#: what an unencodable character or an invalid UTF-8 sequence becomes
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """*text* with each lone surrogate replaced by U+FFFD (pairs joined into their character); *text* itself when
    it holds none."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_value(value: Any) -> Any:
    """*value* with :func:`clean_text` applied to every string in it, dict keys and nested lists/dicts included;
    *value* itself when nothing changes."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        items = [(clean_value(k), clean_value(v)) for k, v in value.items()]
        return value if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items())) else dict(items)
    if isinstance(value, (list, tuple)):
        items = [clean_value(v) for v in value]
        return value if all(a is b for a, b in zip(value, items)) else type(value)(items)
    return value


def decode_text(data: bytes) -> str:
    """UTF-8 *data* as text, each invalid sequence replaced by U+FFFD."""
    return data.decode("utf-8", "replace")


def arrow_columns(data: Any) -> dict[str, list[Any]]:
    """``data.to_pydict()`` of a ``pyarrow`` Table or RecordBatch, with string values that are not valid UTF-8
    (Arrow does not check on read) decoded with U+FFFD replacements instead of raising ``UnicodeDecodeError``.
    Costs nothing over ``to_pydict`` when every value is valid."""
    try:
        return data.to_pydict()
    except UnicodeDecodeError:
        return {name: _column_values(col) for name, col in zip(data.schema.names, data.columns)}


def arrow_rows(data: Any) -> list[dict[str, Any]]:
    """``data.to_pylist()`` with the repair of :func:`arrow_columns`."""
    try:
        return data.to_pylist()
    except UnicodeDecodeError:
        names = data.schema.names
        return [dict(zip(names, values)) for values in zip(*(_column_values(c) for c in data.columns))]


def _column_values(column: Any) -> list[Any]:
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        return [_decoded(v, column.type) for v in column.cast(_as_binary(column.type)).to_pylist()]


def _as_binary(type_: Any) -> Any:
    """*type_* with every string type inside it replaced by the binary type of the same layout."""
    import pyarrow as pa

    t = pa.types
    if t.is_string(type_):
        return pa.binary()
    if t.is_large_string(type_):
        return pa.large_binary()
    if t.is_dictionary(type_):
        return _as_binary(type_.value_type)
    if t.is_map(type_):
        return pa.map_(_as_binary(type_.key_type), _as_binary(type_.item_type))
    if t.is_list(type_) or t.is_large_list(type_) or t.is_fixed_size_list(type_):
        field = type_.value_field.with_type(_as_binary(type_.value_type))
        if t.is_fixed_size_list(type_):
            return pa.list_(field, type_.list_size)
        return (pa.large_list if t.is_large_list(type_) else pa.list_)(field)
    if t.is_struct(type_):
        return pa.struct([type_.field(i).with_type(_as_binary(type_.field(i).type)) for i in range(type_.num_fields)])
    return type_


def _decoded(value: Any, type_: Any) -> Any:
    """A value read with :func:`_as_binary`'s type, its bytes decoded where *type_* holds text."""
    import pyarrow as pa

    t = pa.types
    if value is None:
        return None
    if t.is_dictionary(type_):
        return _decoded(value, type_.value_type)
    if t.is_string(type_) or t.is_large_string(type_):
        return decode_text(value)
    if t.is_map(type_):
        return [(_decoded(k, type_.key_type), _decoded(v, type_.item_type)) for k, v in value]
    if t.is_list(type_) or t.is_large_list(type_) or t.is_fixed_size_list(type_):
        return [_decoded(v, type_.value_type) for v in value]
    if t.is_struct(type_):
        return {f.name: _decoded(value[f.name], f.type) for f in type_}
    return value

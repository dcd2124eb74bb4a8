"""Which columns of a table input give a row: the image, the prompt, and the carried fields.

One choice for every input read as columns (Parquet files, a Hugging Face dataset), and one list of prompt
column names for every input that looks one up by name (also a WebDataset sample's ``.json`` fields and the
pairwise judgement tables of ``clipgauge validate``):

* image column: the one named (``--image-column``), else the first of :data:`IMAGE_COLUMNS` present; it holds
  bytes (img2dataset's ``jpg``), a path (relative paths resolve against the input's folder) or a Hugging Face
  ``Image`` struct of ``bytes`` and ``path``;
* prompt column: the one named (``--prompt-column``), else the first of :data:`PROMPT_COLUMNS` present:
  clipgauge's own ``prompt`` first, then ``caption`` (img2dataset, COCO, Pick-a-Pic), ``txt`` and ``text``;
* carried fields: every other column, and the image column too when it holds paths (image bytes are not
  carried; the ``row_id``/``row_source`` columns are replaced by the run's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import resolve_path
from .shards import ID_COLUMNS, SourceRow

#: image column names looked for, in this order, when none is named
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "img")
#: prompt (caption) column or field names looked for, in this order, when none is named
PROMPT_COLUMNS = ("prompt", "caption", "txt", "text")


def first_present(names: Any, candidates: tuple[str, ...]) -> str | None:
    """The first of *candidates* in *names* (a list of column names, or a dict's keys), else None."""
    return next((c for c in candidates if c in names), None)


def pick_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, where: str) -> str:
    """*wanted* if present, else the first candidate present; :class:`UsageError` naming the columns otherwise."""
    if wanted is not None:
        if wanted not in names:
            raise UsageError(f"{where} has no '{wanted}' column (columns: {', '.join(names)})")
        return wanted
    found = first_present(names, candidates)
    if found is None:
        raise UsageError(f"{where} has no {what} column (looked for {', '.join(candidates)}; columns: "
                         f"{', '.join(names)}); name it with --{what}-column")
    return found


def optional_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, where: str,
                    required: bool) -> str | None:
    """:func:`pick_column`, or None when the column is not *required*, not named, and none of *candidates* is
    present."""
    if not required and wanted is None and first_present(names, candidates) is None:
        return None
    return pick_column(names, wanted, candidates, what, where)


def image_kind(type_) -> str:
    """``bytes``, ``path`` or ``struct`` (HF Image: bytes + path) for an Arrow image column type."""
    import pyarrow as pa

    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return "bytes"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "path"
    if pa.types.is_struct(type_) and {type_.field(i).name for i in range(type_.num_fields)} >= {"bytes", "path"}:
        return "struct"
    if pa.types.is_null(type_):
        return "null"
    raise UsageError(f"image column has type {type_}: expected bytes, a path string or an Image struct")


def image_value(value: Any, kind: str, base: Path) -> tuple[bytes | Path | None, str | None]:
    """(image, error) from one cell: bytes as they are, paths resolved against *base*."""
    if kind == "struct" and isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"], None
        value, kind = value.get("path"), "path"
    if value is None or kind == "null":
        return None, "missing image"
    if kind == "bytes" or isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    if isinstance(value, str) and value.strip():
        return resolve_path(value, base), None
    return None, "missing image"


def carried_fields(schema, image_column: str, kind: str):
    """The Arrow schema of the fields carried to the results (image bytes dropped, id columns replaced)."""
    import pyarrow as pa

    drop = set(ID_COLUMNS) | ({image_column} if kind in ("bytes", "struct") else set())
    return pa.schema([f for f in schema if f.name not in drop])


class TableColumns:
    """The columns of a table input (its Arrow *schema*) that make each row, chosen once when it is opened.

    ``image`` and ``prompt`` (None: no prompt column, allowed when prompts are not *require_prompt*-ed) are the
    chosen names, ``image_kind`` what the image column holds, ``carried`` the Arrow schema of the carried
    fields; :class:`UsageError` (one line, naming *where*) when a named column is missing or none is found.
    """

    def __init__(self, schema, where: str, *, image_column: str | None = None, prompt_column: str | None = None,
                 require_prompt: bool = True) -> None:
        self.image = pick_column(schema.names, image_column, IMAGE_COLUMNS, "image", where)
        self.prompt = optional_column(schema.names, prompt_column, PROMPT_COLUMNS, "prompt", where, require_prompt)
        self.require_prompt = require_prompt
        self.image_kind = image_kind(schema.field(self.image).type)
        self.carried = carried_fields(schema, self.image, self.image_kind)

    def row(self, index: int, source: str, cells: dict[str, Any], base: Path) -> SourceRow:
        """Row *index* from its *cells* (column → value; absent columns read as None), image paths against
        *base*; a row without an image, or without a required prompt, gets an ``error``."""
        fields = {c: cells.get(c) for c in self.carried.names}
        image, error = image_value(cells.get(self.image), self.image_kind, base)
        prompt = cells.get(self.prompt) if self.prompt else None
        if error is None and prompt is None and self.require_prompt:
            error = f"missing '{self.prompt}' value"
        return SourceRow(index, source, fields, image=image, prompt=prompt, error=error)

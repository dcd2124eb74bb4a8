"""Pick the row source for an input spec: WebDataset tars, Parquet files, an HF dataset, or a manifest.

=====================================================  ==============================================
input                                                  source
=====================================================  ==============================================
``x.tar``, ``shards/{00000..00999}.tar``, ``*.tar``    :class:`~.webdataset.WebDatasetSource`
(also ``.tar.gz``/``.tgz``), a folder of ``.tar``
``x.parquet``, ``parts/*.parquet``, a folder of        :class:`~.parquet.ParquetSource`
``.parquet`` files
a folder written by ``datasets``' ``save_to_disk``     :class:`~.hf_datasets.HFDatasetSource`
``x.jsonl``/``.csv``/``.tsv``, a folder of images      :class:`ManifestSource` (streamed by
with ``.txt`` sidecars                                 :class:`~.manifest.ManifestReader`)
=====================================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..hashing import file_sha256
from ..image_files import DEFAULT_MAX_IMAGE_BYTES, kind_reason, special_kind
from .manifest import ManifestReader
from .shards import ID_COLUMNS, RowSource, Selection, SourceRow, expand_input, has_pattern
from .webdataset import is_tar_path


def open_source(spec: str | Path, *, image_column: str | None = None, prompt_column: str | None = None,
                require_prompt: bool = True, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> RowSource:
    """The :class:`RowSource` for *spec*; :class:`UsageError` when it names nothing readable.

    *require_prompt* False (a run that needs only images, e.g. zero-shot classification): rows without a
    prompt (no sidecar, no prompt column or value, no caption) are not errors; their prompt is None.
    *max_image_bytes*: a WebDataset image member larger than this is an error row, never read (image files and
    in-memory image bytes of the other sources are checked where they are decoded, ``clipgauge.image_files``)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if has_pattern(spec) and not path.exists():
        paths = expand_input(spec)
        if not paths:
            raise UsageError(f"no input file matches {spec}")
        if not any(p.exists() for p in paths):
            raise UsageError(f"none of the {len(paths)} files of {spec} exists (first: {paths[0]})")
        _no_special_files(paths)
        return _by_suffix(spec, paths, image_column, prompt_column, require_prompt, max_image_bytes)
    if path.is_dir():
        from .hf_datasets import HFDatasetSource, is_hf_dataset_dir

        if is_hf_dataset_dir(path):
            return HFDatasetSource(path, image_column=image_column, prompt_column=prompt_column,
                                   require_prompt=require_prompt)
        tars = sorted(p for p in path.iterdir() if p.is_file() and is_tar_path(p))
        if tars:
            return _by_suffix(spec, tars, image_column, prompt_column, require_prompt, max_image_bytes)
        parquets = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet")
        if parquets:
            return _by_suffix(spec, parquets, image_column, prompt_column, require_prompt)
        return ManifestSource(path, require_prompt=require_prompt)
    if not path.exists():
        what = "manifest" if path.suffix.lower() in (".jsonl", ".ndjson", ".csv", ".tsv") else "input"
        raise UsageError(f"{what} not found: {spec}")
    _no_special_files([path])
    if is_tar_path(path) or path.suffix.lower() == ".parquet":
        return _by_suffix(spec, [path], image_column, prompt_column, require_prompt, max_image_bytes)
    return ManifestSource(path, require_prompt=require_prompt)


def _no_special_files(paths: list[Path]) -> None:
    """:class:`UsageError` for an input path that is a named pipe, a device or a socket (reading it could wait
    forever or never end), found by ``stat`` before anything opens it; missing files and folders are left to the
    sources (error rows)."""
    for p in paths:
        try:
            kind = special_kind(p.stat().st_mode)
        except (OSError, ValueError):
            continue
        if kind not in (None, "a directory"):
            raise UsageError(f"input {kind_reason(p, kind)}")


def is_manifest_input(spec: str | Path) -> bool:
    """Whether *spec* is something the single-file ``score --out FILE`` path reads (a manifest or image folder)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if has_pattern(spec) and not path.exists():
        return False
    if path.is_dir():
        from .hf_datasets import is_hf_dataset_dir

        return not is_hf_dataset_dir(path) and not any(p.is_file() and is_tar_path(p) for p in path.iterdir())
    return not is_tar_path(path)


def _by_suffix(spec: str, paths: list[Path], image_column: str | None, prompt_column: str | None,
               require_prompt: bool = True, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> RowSource:
    tars = [p for p in paths if is_tar_path(p)]
    parquets = [p for p in paths if p.suffix.lower() == ".parquet"]
    if len(tars) == len(paths):
        from .webdataset import WebDatasetSource

        return WebDatasetSource(spec, paths, prompt_key=prompt_column, require_prompt=require_prompt,
                                max_image_bytes=max_image_bytes)
    if len(parquets) == len(paths):
        from .parquet import ParquetSource

        return ParquetSource(spec, paths, image_column=image_column, prompt_column=prompt_column,
                             require_prompt=require_prompt)
    raise UsageError(f"{spec}: expected only .tar (WebDataset) or only .parquet files, got e.g. {paths[0].name}")


class ManifestSource(RowSource):
    """A manifest file or image folder, one unit, streamed by :class:`~.manifest.ManifestReader`.

    Never holds its rows: opening counts them and collects the column names (and, for JSONL/CSV/TSV, their
    types) in one pass — a :class:`~.errors.ManifestError` there, before anything is scored, when the
    manifest cannot be used; :meth:`iter_unit` reads them again lazily; the file's SHA-256, a folder's
    listing hash and the other kinds' types take one more pass each, once. Pickles small (Ray): path,
    counts, columns and what was computed, never rows or a folder's listing.
    """

    kind = "manifest"

    def __init__(self, path: Path, *, require_prompt: bool = True) -> None:
        self.spec = str(path)
        self.path = Path(path)
        self.reader = ManifestReader(self.path, require_prompt=require_prompt)
        self.n_rows = self.reader.n_rows
        self.columns = list(self.reader.columns)
        self._sha256: str | None = None
        self._listing_sha256: str | None = None
        self._schema = None

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the manifest file (``None`` for an image folder), computed once."""
        if self._sha256 is None and self.reader.kind != "folder":
            self._sha256 = file_sha256(self.reader.path)
        return self._sha256

    @property
    def base_dir(self) -> Path:
        """The folder relative image paths (and other path cells) resolve against."""
        return self.reader.base_dir

    def resolve_path(self, value: str) -> Path:
        """A path from a cell: absolute as given, relative against :attr:`base_dir`."""
        return self.reader.resolve(value)

    def units(self) -> list[str]:
        return [self.path.name]

    def unit_rows(self, unit: int) -> int:
        return self.n_rows

    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        everything = selection.shards is None and not selection.exclude
        return self.reader.rows(first, None if everything else selection.wants)

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {"kind": self.kind, "rows": self.n_rows, "sha256": self.sha256}
        if self.reader.kind == "folder":  # a hash of its listing and prompts
            if self._listing_sha256 is None:
                self._listing_sha256 = self.reader.listing_sha256()
            fp["listing_sha256"] = self._listing_sha256
        return fp

    def schema(self):
        """The carried columns' types, as ``pa.array(column values).type`` (string for mixed values); one pass."""
        import pyarrow as pa

        if self._schema is None:
            types = self.reader.arrow_types()
            self._schema = pa.schema([pa.field(c, types[c]) for c in self.columns if c not in ID_COLUMNS])
        return self._schema

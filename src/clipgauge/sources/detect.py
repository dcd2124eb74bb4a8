"""Pick the row source for an input spec: WebDataset tars, Parquet files, an HF dataset, or a manifest.

=====================================================  ==============================================
input                                                  source
=====================================================  ==============================================
``x.tar``, ``shards/{00000..00999}.tar``, ``*.tar``    :class:`~.webdataset.WebDatasetSource`
(also ``.tar.gz``/``.tgz``), a folder of ``.tar``
``x.parquet``, ``parts/*.parquet``, a folder of        :class:`~.parquet.ParquetSource`
``.parquet`` files
a folder written by ``datasets``' ``save_to_disk``     :class:`~.hf_datasets.HFDatasetSource`
``x.jsonl``/``.csv``/``.tsv``, a folder of images      :class:`ManifestSource` (read by
with ``.txt`` sidecars                                 :func:`~.manifest.read_manifest`)
=====================================================  ==============================================
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..hashing import file_sha256
from .manifest import Manifest, read_manifest
from .shards import RowSource, Selection, SourceRow, expand_input, has_pattern
from .webdataset import is_tar_path


def open_source(spec: str | Path, *, image_column: str | None = None, prompt_column: str | None = None) -> RowSource:
    """The :class:`RowSource` for *spec*; :class:`UsageError` when it names nothing readable."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if has_pattern(spec) and not path.exists():
        paths = expand_input(spec)
        if not paths:
            raise UsageError(f"no input file matches {spec}")
        if not any(p.exists() for p in paths):
            raise UsageError(f"none of the {len(paths)} files of {spec} exists (first: {paths[0]})")
        return _by_suffix(spec, paths, image_column, prompt_column)
    if path.is_dir():
        from .hf_datasets import HFDatasetSource, is_hf_dataset_dir

        if is_hf_dataset_dir(path):
            return HFDatasetSource(path, image_column=image_column, prompt_column=prompt_column)
        tars = sorted(p for p in path.iterdir() if p.is_file() and is_tar_path(p))
        if tars:
            return _by_suffix(spec, tars, image_column, prompt_column)
        parquets = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet")
        if parquets:
            return _by_suffix(spec, parquets, image_column, prompt_column)
        return ManifestSource(path)
    if not path.exists():
        raise UsageError(f"input not found: {spec}")
    if is_tar_path(path) or path.suffix.lower() == ".parquet":
        return _by_suffix(spec, [path], image_column, prompt_column)
    return ManifestSource(path)


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


def _by_suffix(spec: str, paths: list[Path], image_column: str | None, prompt_column: str | None) -> RowSource:
    tars = [p for p in paths if is_tar_path(p)]
    parquets = [p for p in paths if p.suffix.lower() == ".parquet"]
    if len(tars) == len(paths):
        from .webdataset import WebDatasetSource

        return WebDatasetSource(spec, paths, prompt_key=prompt_column)
    if len(parquets) == len(paths):
        from .parquet import ParquetSource

        return ParquetSource(spec, paths, image_column=image_column, prompt_column=prompt_column)
    raise UsageError(f"{spec}: expected only .tar (WebDataset) or only .parquet files, got e.g. {paths[0].name}")


class ManifestSource(RowSource):
    """A manifest file or image folder (small: read whole with :func:`read_manifest`), one unit."""

    kind = "manifest"

    def __init__(self, path: Path) -> None:
        self.spec = str(path)
        self.path = Path(path)
        manifest = self._manifest()
        self.n_rows = len(manifest.rows)
        self.columns = list(manifest.columns)
        self.sha256 = file_sha256(self.path) if self.path.is_file() else None

    def _manifest(self) -> Manifest:
        m = getattr(self, "_cache_manifest", None)
        if m is None:
            m = self._cache_manifest = read_manifest(self.path)
        return m

    def units(self) -> list[str]:
        return [self.path.name]

    def unit_rows(self, unit: int) -> int:
        return self.n_rows

    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        name = self.path.name
        for i, r in enumerate(self._manifest().rows):
            if not selection.wants(first + i):
                yield SourceRow(first + i, skipped=True)
            else:
                yield SourceRow(first + i, f"{name}:{i}", dict(r.fields), image=r.image, prompt=r.prompt,
                                error=r.error)

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {"kind": self.kind, "rows": self.n_rows, "sha256": self.sha256}
        if self.sha256 is None:  # an image folder: a hash of its listing and prompts
            listing = [(r.fields.get("image"), r.prompt) for r in self._manifest().rows]
            fp["listing_sha256"] = hashlib.sha256(json.dumps(listing, default=str).encode()).hexdigest()
        return fp

    def schema(self):
        import pyarrow as pa

        from .shards import ID_COLUMNS

        rows = self._manifest().rows
        fields = []
        for c in self.columns:
            if c in ID_COLUMNS:
                continue
            values = [r.fields.get(c) for r in rows]
            try:
                type_ = pa.array(values).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                type_ = pa.string()
            fields.append(pa.field(c, type_))
        return pa.schema(fields)

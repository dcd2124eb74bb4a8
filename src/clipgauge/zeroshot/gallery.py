"""The images a retrieval searches, streamed in chunks: an image input encoded batch by batch, or the image
embeddings stored by ``clipgauge score --save-embeddings`` (a results folder or a ``.parquet`` results file), read
as stored, with no re-encoding.

Either way only one chunk of embeddings is in memory at a time (plus each chunk's rows' image and prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

#: rows per chunk
CHUNK_ROWS = 4096


@dataclass
class Chunk:
    """One chunk of gallery rows: row ids, image embeddings (C, D) float32 (NaN rows where a row has none),
    each row's image (path text or row source), prompt (None where absent) and error (None where fine)."""

    ids: np.ndarray
    embeddings: np.ndarray
    images: list[str | None]
    prompts: list[str | None]
    errors: list[str | None]


class StoredGallery:
    """Image embeddings saved with a results folder or ``.parquet`` results file (float16, unit vectors as
    stored). :attr:`model` and :attr:`weights_sha256` say which model made them (from the run's summary)."""

    kind = "stored"

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        from ..sinks.sharded import is_run_folder, list_parts
        from ..sinks.summary import read_summary

        self.path = Path(path).expanduser()
        if is_run_folder(self.path):
            self.files = list(list_parts(self.path).values())
        elif self.path.is_file() and self.path.suffix.lower() == ".parquet":
            self.files = [self.path]
        else:
            raise UsageError(f"{path}: stored embeddings are read from a results folder or a .parquet results file")
        if not self.files:
            raise UsageError(f"{path} holds no results")
        names = pq.read_schema(self.files[0]).names
        if "image_embedding" not in names:
            raise UsageError(f"{path} has no stored image embeddings: score it with save_embeddings=True",
                             cli=f"{path} has no stored image embeddings: score it with --save-embeddings")
        self.columns = [c for c in ("row_id", "image", "prompt", "error") if c in names]
        summary = read_summary(self.path) or {}
        model = (summary.get("provenance") or {}).get("model") or {}
        self.model: str | None = model.get("spec")
        self.weights_sha256: str | None = model.get("weights_sha256")
        base = (summary.get("input") or {}).get("base_dir")
        self.base_dir = Path(base) if base else self.path.parent

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "model": self.model, "weights_sha256": self.weights_sha256}

    def check_model(self, scorer: Any) -> None:
        """Refuse to mix models: :class:`UsageError` when *scorer*'s weights are not the ones that made these
        embeddings (by weights SHA-256, else by model spec)."""
        if self.weights_sha256 is None and self.model is None:
            raise UsageError(f"{self.path}: its summary does not say which model made the stored embeddings")
        sha = scorer.encoder.weights_sha256()
        if self.weights_sha256 is not None and sha != self.weights_sha256 or (
                self.weights_sha256 is None and scorer.model_spec != self.model):
            raise UsageError(f"the embeddings in {self.path} come from another model ({self.model}, weights "
                             f"{str(self.weights_sha256)[:12]}) than {scorer.model_spec} (weights {sha[:12]}): "
                             "cosines of different models cannot be mixed; use that model or re-score")

    def prompts(self) -> Iterator[str | None]:
        """Each row's prompt, in order (None where it has none)."""
        import pyarrow.parquet as pq

        for f in self.files:
            pf = pq.ParquetFile(f)
            if "prompt" not in pf.schema_arrow.names:
                yield from [None] * pf.metadata.num_rows
                continue
            for batch in pf.iter_batches(columns=["prompt"]):
                yield from batch.column(0).to_pylist()

    def chunks(self, scorer: Any = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        first = 0
        for f in self.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows,
                                                        columns=["image_embedding", *self.columns]):
                cols = {name: batch.column(name) for name in batch.schema.names}
                n = batch.num_rows
                emb = cols["image_embedding"]
                dim = emb.type.list_size
                values = emb.flatten().to_numpy(zero_copy_only=False)  # nulls' slots are kept (zeros)
                matrix = values.reshape(n, dim).astype(np.float32) if n else np.zeros((0, dim), np.float32)
                matrix[~emb.is_valid().to_numpy(zero_copy_only=False)] = np.nan
                ids = (cols["row_id"].to_numpy(zero_copy_only=False).astype(np.int64) if "row_id" in cols
                       else np.arange(first, first + n, dtype=np.int64))
                images = [None if v is None else str(self.base_dir / v) if isinstance(v, str) else None
                          for v in (cols["image"].to_pylist() if "image" in cols else [None] * n)]
                prompts = cols["prompt"].to_pylist() if "prompt" in cols else [None] * n
                errors = cols["error"].to_pylist() if "error" in cols else [None] * n
                missing = np.isnan(matrix).any(axis=1)
                errors = [e or ("no stored embedding" if m else None) for e, m in zip(errors, missing)]
                first += n
                yield Chunk(ids, matrix, images, prompts, errors)


class ImageGallery:
    """An image input (folder, manifest, WebDataset, Parquet, HF dataset) encoded chunk by chunk."""

    kind = "images"

    def __init__(self, spec: str | Path, *, image_column: str | None = None, prompt_column: str | None = None,
                 require_prompt: bool = False) -> None:
        from ..sources.detect import open_source

        self.spec = str(spec)
        self.source = open_source(spec, image_column=image_column, prompt_column=prompt_column,
                                  require_prompt=require_prompt)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec}

    def check_model(self, scorer: Any) -> None:
        """Nothing to check: the images are encoded by the query model itself."""

    def prompts(self) -> Iterator[str | None]:
        for row in self.source.rows():
            yield row.prompt if isinstance(row.prompt, str) and row.error is None else None

    def chunks(self, scorer: Any, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        rows: list[Any] = []
        for row in self.source.rows():
            rows.append(row)
            if len(rows) >= chunk_rows:
                yield self._chunk(scorer, rows)
                rows = []
        if rows:
            yield self._chunk(scorer, rows)

    @staticmethod
    def _chunk(scorer: Any, rows: list[Any]) -> Chunk:
        from ..scoring.pipeline import Skip

        srcs = [Skip(r.error) if r.error else (r.image if r.image is not None else Skip("missing image"))
                for r in rows]
        emb, errs = scorer.try_embed_images(srcs)
        if emb.shape[1] == 0:
            emb = np.full((len(rows), scorer.embed_texts([""]).shape[1]), np.nan, dtype=np.float32)
        images = [str(r.image) if isinstance(r.image, (str, Path)) else r.source for r in rows]
        prompts = [r.prompt if isinstance(r.prompt, str) else None for r in rows]
        errors = [r.error or e for r, e in zip(rows, errs)]
        return Chunk(np.array([r.index for r in rows], dtype=np.int64), emb, images, prompts, errors)


def open_gallery(spec: str | Path, **kwargs: Any) -> StoredGallery | ImageGallery:
    """Stored embeddings when *spec* is a results folder or a ``.parquet`` results file holding
    ``image_embedding``; otherwise an image input."""
    from ..sinks.sharded import is_run_folder

    path = Path(str(spec)).expanduser()
    if is_run_folder(path):
        return StoredGallery(path)
    if path.is_file() and path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            if "image_embedding" in pq.read_schema(path).names:
                return StoredGallery(path)
        except Exception:  # noqa: BLE001 - not a readable results file: open it as an image input
            pass
    return ImageGallery(spec, **kwargs)

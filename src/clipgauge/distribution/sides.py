"""One side of a distance: the image embeddings of an image set, and which model made them.

A side is read from (first match wins):

* a reference-statistics ``.npz`` (:mod:`.reference`): its mean and covariance (all ``n`` images) and its stored
  subsample of embeddings;
* a results folder or ``.parquet`` results file scored with ``--save-embeddings``: the stored float16 unit vectors,
  no image read again (:class:`~clipgauge.zeroshot.gallery.StoredGallery`);
* anything ``clipgauge score`` reads (folder, manifest, shards, Parquet, HF dataset): each image embedded by the
  run's model, preprocessed exactly as ``score`` preprocesses it, or with ``preprocess="cmmd"`` as the CMMD
  reference code does (:func:`cmmd_image`).

Rows without an embedding (unreadable images, errors of the scored run) are counted, never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .frechet import Moments
from .reference import ReferenceStats, is_reference, load_reference

#: preprocessing choices: the model's own (``score``'s), or the CMMD reference code's
PREPROCESS = ("model", "cmmd")


@dataclass
class Side:
    """Embeddings of one image set: ``embeddings`` (N, D) float32 unit rows (a reference file: its subsample),
    ``mean``/``cov`` of all ``n`` rows (float64), and where they come from."""

    spec: str
    kind: str  # "images", "stored" or "reference"
    embeddings: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    n: int
    model: str | None
    weights_sha256: str | None
    preprocessing: dict[str, Any]
    n_failed: int = 0
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def open_side(spec: str | Path, *, image_column: str | None = None) -> ReferenceStats | Any:
    """What *spec* is, without embedding anything: the :class:`ReferenceStats` of a reference file, else a gallery
    (:func:`~clipgauge.zeroshot.gallery.open_gallery`: stored embeddings or an image input) for :func:`embed_side`."""
    from ..zeroshot.gallery import open_gallery

    if is_reference(spec):
        return load_reference(spec)
    return open_gallery(spec, image_column=image_column)


def reference_side(spec: str, ref: ReferenceStats) -> Side:
    """A reference file as a side: its stored subsample as ``embeddings``, its mean and covariance of all ``n``."""
    return Side(str(spec), "reference", np.asarray(ref.embeddings, np.float32), ref.mean, ref.cov, ref.n, ref.model,
                ref.weights_sha256, ref.preprocessing, extra={"embeddings_kept": int(len(ref.embeddings))})


def embed_side(spec: str, gallery: Any, embedder: Any, preprocess: str = "model") -> Side:
    """All of *gallery*'s image embeddings (stored ones as stored; images embedded by *embedder*)."""
    from ..errors import UsageError

    rows: list[np.ndarray] = []
    moments = Moments()
    failed, first = 0, None
    if gallery.kind == "stored" and preprocess != "model":
        raise UsageError(f"{spec}: stored embeddings were made with the model's own preprocessing; "
                         f"--preprocess {preprocess} needs the images")
    chunks = gallery.chunks(embedder) if preprocess == "model" or gallery.kind == "stored" else \
        _cmmd_chunks(gallery, embedder)
    for chunk in chunks:
        ok = ~np.isnan(chunk.embeddings).any(axis=1) if chunk.embeddings.size else np.zeros(len(chunk.ids), bool)
        for e, good in zip(chunk.errors, ok):
            if not good:
                failed += 1
                first = first or e or "no embedding"
        emb = chunk.embeddings[ok].astype(np.float32)
        if len(emb):
            rows.append(emb)
            moments.update(emb)
    if not rows:
        raise UsageError(f"{spec}: no image has an embedding ({failed} rows; first: {first})")
    x = np.concatenate(rows)
    if gallery.kind == "stored":
        prov = {"model": gallery.model, "weights_sha256": gallery.weights_sha256, "preprocessing": {}}
    else:
        p = embedder.provenance()
        prov = {"model": embedder.model_spec, "weights_sha256": p["model"].get("weights_sha256"),
                "preprocessing": p["preprocessing"] if preprocess == "model" else cmmd_preprocessing(embedder)}
    return Side(str(spec), gallery.kind, x, moments.mean, moments.cov, moments.n, prov["model"],
                prov["weights_sha256"], prov["preprocessing"], failed, first)


def check_same_model(a: Side, b: Side) -> None:
    """:class:`UsageError` (one line) when *a* and *b* were embedded by different models (by weights SHA-256 where
    both record it, else by model spec)."""
    from ..errors import UsageError

    if a.weights_sha256 and b.weights_sha256:
        same = a.weights_sha256 == b.weights_sha256
    else:
        same = a.model is None or b.model is None or a.model == b.model
    if not same or a.embeddings.shape[1] != b.embeddings.shape[1]:
        raise UsageError(f"{a.spec} and {b.spec} were embedded by different models ({a.model}, weights "
                         f"{str(a.weights_sha256)[:12]}; {b.model}, weights {str(b.weights_sha256)[:12]}): distances "
                         "between embeddings of two models mean nothing; use one model for both")
    kinds = {"cmmd" if "recipe" in s.preprocessing else "model" for s in (a, b) if s.preprocessing}
    if len(kinds) > 1:
        raise UsageError(f"{a.spec} and {b.spec} were preprocessed differently (--preprocess model and cmmd): "
                         "use the same --preprocess for both (a reference file records its own)")


# ----------------------------------------------------------------- the CMMD reference preprocessing
def cmmd_image(image: Any, size: int) -> Any:
    """google-research ``cmmd/io_util.py`` ``_center_crop_and_resize``: the centred largest square, resized to
    *size* × *size* by PIL bicubic (with its antialiasing) on the 8-bit image. The model's own preprocessing
    then leaves it as it is (a resize to the size it has is a copy; the crop is the whole image)."""
    w, h = image.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    from PIL import Image

    return image.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)


def cmmd_preprocessing(embedder: Any) -> dict[str, Any]:
    own = embedder.provenance()["preprocessing"]
    return {"recipe": "cmmd (google-research cmmd/io_util.py): centred largest square, PIL bicubic resize to the "
                      "model's input size, /255, the model's mean/std; no further resize or crop",
            "size": embedder.encoder.input_size, "mean": own.get("mean"), "std": own.get("std")}


def _cmmd_chunks(gallery: Any, embedder: Any, chunk_rows: int = 256) -> Any:
    from ..decode import load_image
    from ..errors import UsageError
    from ..scoring.pipeline import Skip
    from ..zeroshot.gallery import Chunk

    size = embedder.encoder.input_size
    if not size:
        raise UsageError(f"{embedder.model_spec}: its preprocessing states no input size; use --preprocess model")
    rows: list[Any] = []

    def flush(rows: list[Any]) -> Chunk:
        srcs = []
        for r in rows:
            try:
                srcs.append(Skip(r.error) if r.error else cmmd_image(load_image(r.image), size))
            except Exception as exc:  # noqa: BLE001 - an unreadable image is that row's reason
                srcs.append(Skip(f"{type(exc).__name__}: {exc}"))
        emb, errs = embedder.try_embed_images(srcs)
        n = len(rows)
        if emb.shape[1] == 0:
            emb = np.full((n, 1), np.nan, np.float32)
        return Chunk(np.arange(n), emb, [None] * n, [None] * n, [r.error or e for r, e in zip(rows, errs)])

    for row in gallery.source.rows():
        rows.append(row)
        if len(rows) >= chunk_rows:
            yield flush(rows)
            rows = []
    if rows:
        yield flush(rows)

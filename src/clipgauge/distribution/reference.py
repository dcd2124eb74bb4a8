"""Reference statistics: what a later ``clipgauge distance`` needs of a reference image set, in one ``.npz`` file.

A user computes them once (``clipgauge distance --save-reference REF.npz IMAGES``; e.g. COCO-30k) and ships the
file. It holds the model (spec, weights SHA-256) and preprocessing, the number of images ``n``, the mean (D,) and
covariance (D, D) of the L2-normalised image embeddings (float64, ``np.cov(rowvar=False)``: FD uses them whole),
and a seeded subsample of the embeddings themselves (float32, at most :data:`SAMPLE_ROWS` rows; all of them when
there are fewer) for CMMD, KID and Vendi. Versions, the input and the date are in ``provenance``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_atomic
from ..errors import UsageError

#: the file's format name and version (in its metadata)
FORMAT, VERSION = "clipgauge-reference-statistics", 1
#: embeddings kept for CMMD / KID / Vendi (a seeded subsample beyond)
SAMPLE_ROWS = 10_000


@dataclass
class ReferenceStats:
    """Reference statistics of one image set (see the module docstring); ``embeddings``: (k, D) float32 unit rows,
    k ≤ :data:`SAMPLE_ROWS`, a seeded subsample of the ``n`` images' embeddings."""

    model: str | None
    weights_sha256: str | None
    preprocessing: dict[str, Any]
    n: int
    mean: np.ndarray
    cov: np.ndarray
    embeddings: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def model_spec(self) -> str | None:
        return self.model


def subsample(x: np.ndarray, rows: int = SAMPLE_ROWS, seed: int = 0) -> np.ndarray:
    """At most *rows* rows of *x*, chosen without replacement by ``np.random.default_rng(seed)`` (kept in order)."""
    if len(x) <= rows:
        return x
    keep = np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))
    return x[keep]


def save_reference(path: str | Path, stats: ReferenceStats) -> Path:
    """Write *stats* to *path* (``.npz``, atomically); :class:`~clipgauge.errors.OutputError` if it cannot be."""
    meta = {"format": FORMAT, "version": VERSION, "model": stats.model, "weights_sha256": stats.weights_sha256,
            "preprocessing": stats.preprocessing, "n": int(stats.n), "provenance": stats.provenance}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), mean=np.asarray(stats.mean, np.float64),
             cov=np.asarray(stats.cov, np.float64), embeddings=np.asarray(stats.embeddings, np.float32))
    return write_atomic(path, buf.getvalue())


def is_reference(path: str | Path) -> bool:
    """Whether *path* names a ``.npz`` file (read as reference statistics)."""
    p = Path(str(path)).expanduser()
    return p.suffix.lower() == ".npz" and p.is_file()


def load_reference(path: str | Path) -> ReferenceStats:
    """The reference statistics in *path*; :class:`~clipgauge.errors.UsageError` (one line) for a file that is
    missing, unreadable or not one of these."""
    p = Path(str(path)).expanduser()
    try:
        with np.load(p, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            mean, cov, emb = data["mean"], data["cov"], data["embeddings"]
    except FileNotFoundError:
        raise UsageError(f"{path}: no such reference-statistics file") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a clipgauge reference-statistics file ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a clipgauge reference-statistics file")
    if meta.get("version") != VERSION:
        raise UsageError(f"{path}: reference statistics version {meta.get('version')} (this clipgauge reads "
                         f"{VERSION}): make the file again with this version")
    d = mean.shape[0] if mean.ndim == 1 else -1
    if d < 1 or cov.shape != (d, d) or emb.ndim != 2 or emb.shape[1] != d:
        raise UsageError(f"{path}: reference statistics with inconsistent shapes")
    return ReferenceStats(meta.get("model"), meta.get("weights_sha256"), meta.get("preprocessing") or {},
                          int(meta.get("n") or 0), mean, cov, emb, meta.get("provenance") or {})

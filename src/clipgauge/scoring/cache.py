"""On-disk embedding cache, so re-scoring, changing scales or adding a run does not re-encode.

Keys are SHA-256 digests of (model weights hash, preprocessing, precision, input kind, exact content):
the exact prompt text (prefix included) or the exact image file bytes (decoded pixels for in-memory
images). A changed model, preprocessing, precision or file can never hit a stale entry. The store is one
SQLite file (safe across processes; writes are batched per forward pass).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..decode import load_image

FILENAME = "embeddings.sqlite"


class EmbeddingCache:
    """A persistent map from content key to (float32 embedding, truncated flag)."""

    def __init__(self, folder: str | Path, namespace: dict[str, Any]) -> None:
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.namespace = hashlib.sha256(json.dumps(namespace, sort_keys=True, default=str).encode()).hexdigest()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / FILENAME, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, dim INTEGER, truncated INTEGER, data BLOB)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def key(self, kind: str, content: bytes) -> str:
        h = hashlib.sha256(self.namespace.encode())
        h.update(kind.encode() + b"\0")
        h.update(content)
        return h.hexdigest()

    def get(self, key: str) -> tuple[np.ndarray, bool] | None:
        with self._lock:
            row = self._db.execute("SELECT dim, truncated, data FROM emb WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return np.frombuffer(row[2], dtype=np.float32).copy(), bool(row[1])

    def put_many(self, items: list[tuple[str, np.ndarray, bool]]) -> None:
        if not items:
            return
        rows = [(k, int(e.shape[0]), int(t), np.ascontiguousarray(e, dtype=np.float32).tobytes()) for k, e, t in items]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)
            self._db.commit()

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.folder / FILENAME), "hits": self.hits, "misses": self.misses}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def image_content(src: Any) -> bytes:
    """The exact content an image cache key is made of: file bytes, or decoded pixels for in-memory images."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    img = load_image(src)
    return f"{img.mode}{img.size}".encode() + img.tobytes()

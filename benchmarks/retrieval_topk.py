"""Memory and time of clipgauge's streaming top-k (``StreamingTopK``, what ``clipgauge retrieve`` keeps per query)
against the all-pairs way (one queries × gallery cosine matrix, then ``argpartition``), on the same random unit
embeddings, in one run.

The gallery is generated chunk by chunk (as ``retrieve`` reads it), so the numbers are what the search itself
holds: Python's ``tracemalloc`` peak of numpy allocations during each method (numpy reports its buffers to it).
Both methods must return the same top-k ids; the script checks that.

    python benchmarks/retrieval_topk.py --gallery 200000 --queries 256 --dim 512 --k 10
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np

from clipgauge.stats.retrieval import StreamingTopK

CHUNK = 4096


def chunks(n: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        x = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
        yield start, x / np.linalg.norm(x, axis=1, keepdims=True)


def streaming(queries: np.ndarray, n: int, dim: int, k: int) -> np.ndarray:
    top = StreamingTopK(queries, k)
    for start, x in chunks(n, dim, 1):
        top.update(x, np.arange(start, start + len(x)))
    return top.result()[1]


def all_pairs(queries: np.ndarray, n: int, dim: int, k: int) -> np.ndarray:
    sims = np.empty((len(queries), n), dtype=np.float32)  # the queries x gallery matrix
    for start, x in chunks(n, dim, 1):
        sims[:, start:start + len(x)] = queries @ x.T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def measure(fn, *args) -> tuple[np.ndarray, float, float]:
    tracemalloc.start()
    t = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gallery", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    q = rng.standard_normal((a.queries, a.dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}; gallery {a.gallery:,} x {a.dim}, "
          f"{a.queries} queries, k={a.k}, chunks of {CHUNK}")
    ids_s, t_s, m_s = measure(streaming, q, a.gallery, a.dim, a.k)
    ids_a, t_a, m_a = measure(all_pairs, q, a.gallery, a.dim, a.k)
    same = bool((ids_s == ids_a).all())
    print(f"streaming top-k : {t_s:7.2f} s, peak {m_s:9.1f} MiB")
    print(f"all-pairs matrix: {t_a:7.2f} s, peak {m_a:9.1f} MiB")
    print(f"memory all-pairs / streaming: x{m_a / m_s:.1f}; time streaming / all-pairs: x{t_s / t_a:.2f}; "
          f"same top-k ids: {same}")


if __name__ == "__main__":
    main()

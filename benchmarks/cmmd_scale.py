"""CMMD at scale: blocked ``clipgauge.distribution.mmd.cmmd`` vs the naive full-matrix reference.

The naive method is google-research's ``cmmd/distance.py`` ``mmd`` written in numpy float64: it
materialises full n x n kernel matrices (and temporaries), so it needs tens of GB at 50k rows.
Each (method, rows) run happens in its own subprocess; peak memory is that process's RSS high-water
mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and "extra" subtracts the RSS after the
embeddings were generated (so it is the method's own working memory).

Data: ``rows`` x D random unit vectors per set, float32, seeded (numpy default_rng).

    python benchmarks/cmmd_scale.py --rows 50000 --naive-rows 10000
    python benchmarks/cmmd_scale.py --rows 5000 --naive-rows 5000     # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _data(rows: int, dim: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for shift in (0.0, 0.3):
        a = rng.standard_normal((rows, dim), dtype=np.float32)
        a[:, 0] += shift
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        out.append(a)
    return out


def _naive(x, y) -> float:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))
    gamma = 1 / (2 * 10**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * np.matmul(x, x.T) + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * np.matmul(x, y.T) + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * np.matmul(y, y.T) + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return 1000 * (k_xx + k_yy - 2 * k_xy)


def _child(method: str, rows: int, dim: int, seed: int, block_rows: int) -> None:
    from clipgauge.distribution.mmd import cmmd  # imported by both, so "extra" excludes import cost

    x, y = _data(rows, dim, seed)
    base = _rss_mb()
    start = time.perf_counter()
    value = _naive(x, y) if method == "naive" else cmmd(x, y, block_rows=block_rows)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "method": method,
                "rows": rows,
                "value": float(value),
                "seconds": seconds,
                "peak_mb": peak,
                "extra_mb": peak - base,
            }
        )
    )


def _run(method: str, rows: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--rows",
        str(rows),
        "--dim",
        str(args.dim),
        "--seed",
        str(args.seed),
        "--block-rows",
        str(args.block_rows),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"method": method, "rows": rows, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=50_000, help="rows per set for the blocked run (default 50000)")
    p.add_argument("--naive-rows", type=int, default=10_000, help="common size for blocked vs naive (default 10000)")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-rows", type=int, default=4096)
    p.add_argument("--child", choices=["naive", "blocked"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args.child, args.rows, args.dim, args.seed, args.block_rows)
        return

    results = [_run("naive", args.naive_rows, args), _run("blocked", args.naive_rows, args)]
    if args.rows != args.naive_rows:
        results.append(_run("blocked", args.rows, args))
    print(f"D={args.dim}, block_rows={args.block_rows}, threads: torch/BLAS defaults, cpu count {os.cpu_count()}")
    print(f"{'method':8} {'rows':>7} {'CMMD':>14} {'seconds':>9} {'peak MB':>9} {'extra MB':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['method']:8} {r['rows']:>7} failed: {r['error']}")
            continue
        print(
            f"{r['method']:8} {r['rows']:>7} {r['value']:>14.9f} {r['seconds']:>9.2f} {r['peak_mb']:>9.0f} "
            f"{r['extra_mb']:>9.0f}"
        )
    naive, blocked = results[0], results[1]
    if "error" not in naive and "error" not in blocked:
        print(
            f"at {args.naive_rows} rows: blocked/naive time {blocked['seconds'] / naive['seconds']:.2f}x, "
            f"extra memory naive/blocked {naive['extra_mb'] / max(blocked['extra_mb'], 1.0):.1f}x, "
            f"relative difference {abs(blocked['value'] - naive['value']) / abs(naive['value']):.2e}"
        )


if __name__ == "__main__":
    main()

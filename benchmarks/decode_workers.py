"""Decode + crop throughput with worker threads vs worker processes (why clipgauge uses threads), and
what ``--fast-decode`` gains.

Runs clipgauge's own per-image work (``clipgauge.decode.load_image`` + the CLIP crop) over the JPEGs of a
``throughput.py`` workload, in N threads or N processes, and prints images/s. Pillow releases the GIL while
it decodes and resizes, so threads scale without pickling crops across processes. Usage::

    python benchmarks/decode_workers.py --workdir /tmp/clipgauge-bench --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from clipgauge.decode import load_image
from clipgauge.encoders.clip_pil import ClipPilPlan

PLAN = ClipPilPlan(short=224, crop_h=224, crop_w=224, resample=3, scale=1 / 255,
                   mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))


def crop(path: str):
    return PLAN.crop(load_image(path))


def crop_fast(path: str):
    """``--fast-decode``: libjpeg DCT scaling straight to >= 224 px, then the same crop (not exact)."""
    return PLAN.crop(load_image(path, draft=PLAN.short))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clipgauge-bench")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--images", type=int, default=384)
    a = ap.parse_args()
    paths = sorted(str(p) for p in (a.workdir / "workload" / "img").glob("*.jpg"))[: a.images]
    if not paths:
        raise SystemExit(f"no JPEGs under {a.workdir / 'workload' / 'img'}: run throughput.py first")
    for _ in paths[:8]:
        crop(_)  # warm the file cache
    print(f"{len(paths)} JPEGs (512x512) -> 224x224 uint8 crops, {os.cpu_count()} CPUs")
    for n in a.workers:
        for name, pool_cls in (("threads", ThreadPoolExecutor), ("processes", ProcessPoolExecutor)):
            with pool_cls(n) as pool:
                list(pool.map(crop, paths[:n]))  # start the workers outside the timing
                t = time.perf_counter()
                for _ in pool.map(crop, paths, chunksize=1 if name == "threads" else 8):
                    pass
                dt = time.perf_counter() - t
            print(f"{n} {name:>9}: {len(paths) / dt:7.1f} images/s")
        with ThreadPoolExecutor(n) as pool:
            t = time.perf_counter()
            for _ in pool.map(crop_fast, paths):
                pass
            print(f"{n}   threads, --fast-decode: {len(paths) / (time.perf_counter() - t):7.1f} images/s")


if __name__ == "__main__":
    main()

"""Peak memory of ``clipgauge score`` against the number of manifest rows (issue #11: memory flat in rows).

Writes a JSONL manifest of N rows for each ``--rows`` value, then runs, each in a fresh process::

    clipgauge score MANIFEST --model demo --device cpu --out OUT

once with a single-file ``--out results.jsonl`` and once with a folder ``--out DIR`` (sharded parts), and
reports the child's peak RSS (``ru_maxrss`` from ``os.wait4`` on that child alone), its wall time and the
ratio of the peak of the largest N to that of the smallest N for each output. The target of issue #11 is a
ratio of at most 1.10 between 1,000,000 and 10,000 rows.

By default the manifest's images are missing files (``--images missing``): every row fails fast with a
reason, so nothing is decoded and no model runs on images — what is measured is what the pipeline keeps per
row (manifest, records, sinks). ``--images tiny`` points every row at one of a few 8×8 PNGs instead (real
decoding and scoring: only practical for small N on a CPU).

Usage::

    python benchmarks/memory_rows.py                          # 10,000 and 1,000,000 rows, both outputs
    python benchmarks/memory_rows.py --rows 2000,20000        # a quick smoke run
    python benchmarks/memory_rows.py --rows 10000,200000 --outputs file

Set ``PYTHONPATH`` to measure another checkout (the child inherits the environment).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = ["a red circle on a white background", "two blue squares", "a photo of a cat on a sofa",
           "a watercolor painting of a lighthouse at dusk", "a green triangle", "an astronaut riding a horse",
           "a bowl of fruit on a wooden table", "three yellow stars"]


def write_manifest(path: Path, rows: int, images: str) -> Path:
    """A JSONL manifest of *rows* rows (reused when already there), with a few carried columns."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tiny = []
    if images == "tiny":
        from PIL import Image

        for k in range(4):
            name = f"tiny{k}.png"
            Image.new("RGB", (8, 8), (60 * k, 255 - 60 * k, 128)).save(path.parent / name)
            tiny.append(name)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(rows):
            image = tiny[i % len(tiny)] if tiny else f"missing/{i:08d}.png"
            fh.write(json.dumps({"id": f"r{i:08d}", "image": image, "prompt": PROMPTS[i % len(PROMPTS)],
                                 "seed": i, "cfg": 7.5, "model": f"m{i % 3}"}) + "\n")
    tmp.replace(path)
    return path


def measure(manifest: Path, out: Path, timeout: float | None) -> dict:
    """Run ``clipgauge score`` on *manifest* into *out* in a child process: its peak RSS and wall time."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    cmd = [sys.executable, "-m", "clipgauge", "score", str(manifest), "--model", "demo", "--device", "cpu",
           "--out", str(out), "--json"]
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    # ru_maxrss: KiB on Linux, bytes on macOS
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return {"rc": proc.returncode, "peak_rss_mb": peak / 2**20, "wall_s": wall, "log_tail": tail}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="10000,1000000", help="comma-separated row counts (default: %(default)s)")
    ap.add_argument("--outputs", default="file,dir",
                    help="file (--out results.jsonl), dir (--out DIR) or both (default: %(default)s)")
    ap.add_argument("--images", choices=["missing", "tiny"], default="missing",
                    help="missing: image files that do not exist (no decoding); tiny: a few 8x8 PNGs")
    ap.add_argument("--workdir", type=Path, default=None, help="where manifests and outputs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run before it is killed")
    ap.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the results as JSON")
    a = ap.parse_args(argv)
    counts = sorted({int(x.replace("_", "")) for x in a.rows.split(",") if x.strip()})
    outputs = [o.strip() for o in a.outputs.split(",") if o.strip()]
    if not counts or any(o not in ("file", "dir") for o in outputs):
        ap.error("--rows needs numbers, --outputs 'file' and/or 'dir'")

    work = a.workdir or Path(tempfile.mkdtemp(prefix="clipgauge-memrows-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"images: {a.images}; work: {work}", flush=True)
    results: list[dict] = []
    try:
        for n in counts:
            t = time.perf_counter()
            manifest = write_manifest(work / f"m{n}" / "manifest.jsonl", n, a.images)
            print(f"rows {n:>10,}: manifest {manifest.stat().st_size / 2**20:.1f} MB "
                  f"({time.perf_counter() - t:.1f} s to write)", flush=True)
            for kind in outputs:
                out = work / f"m{n}" / ("results.jsonl" if kind == "file" else "results")
                r = measure(manifest, out, a.timeout)
                r.update(rows=n, output=kind)
                results.append(r)
                ok = "" if r["rc"] in (0, 1) else f"  FAILED rc={r['rc']}: {' | '.join(r['log_tail'])}"
                print(f"  --out {'FILE' if kind == 'file' else 'DIR '}: peak RSS {r['peak_rss_mb']:8.1f} MB, "
                      f"{r['wall_s']:7.1f} s, {n / r['wall_s']:9,.0f} rows/s{ok}", flush=True)
    finally:
        if not a.keep and a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print("| rows | --out | peak RSS MB | wall s |")
    print("|---:|---|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {'FILE' if r['output'] == 'file' else 'DIR'} | {r['peak_rss_mb']:.0f} | "
              f"{r['wall_s']:.1f} |")
    ratios = {}
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        for kind in outputs:
            a_, b_ = ([r for r in results if r["rows"] == n and r["output"] == kind and r["rc"] in (0, 1)]
                      for n in (lo, hi))
            if a_ and b_:
                ratio = b_[0]["peak_rss_mb"] / a_[0]["peak_rss_mb"]
                ratios[kind] = ratio
                verdict = "within 10 %" if ratio <= 1.10 else "more than 10 % above"
                print(f"--out {'FILE' if kind == 'file' else 'DIR'}: peak at {hi:,} rows / peak at {lo:,} rows = "
                      f"{ratio:.3f} ({verdict})")
    if a.json_path is not None:
        a.json_path.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")
    return 0 if all(r["rc"] in (0, 1) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The decode-bound regime and the per-row overhead of `clipgauge score`, against their ceilings, in one run.

1. **Decode ceiling**: the same number of threads as `clipgauge score` uses by default (``min(8, cores)``)
   open, decode, convert to RGB, bicubic-resize (shortest side 224, ``reducing_gap=None``) and centre-crop the
   same 512-px JPEGs with Pillow, and do nothing else (``--fast-decode``: the same after Pillow's JPEG ``draft``).
2. **clipgauge score**: the small test CLIP (``tools/tiny_clip.py``: 224 px, patch 32, width 32, 2 layers, so
   its forward pass is cheap and decoding is the limit), ``--device cpu``, default workers, whole processes.
   Start-up (imports, model load, writing and summary of a 1-row run) is stated separately; the rate is
   ``(N - S) / (wall(N) - wall(S))`` between runs of N and S images, S = 512 being above the images the start-up
   prefetch may decode while the model loads, so that neither the start-up nor the prefetch counts in it.
3. **Per-row overhead**: R manifest rows whose image files are missing (nothing to decode: reading the manifest,
   error rows, records, writing, summary) into ``.jsonl``, ``.parquet`` and a results folder; rows/s =
   ``(R - 1) / (wall(R) - wall(1 row))``.

Every measurement runs ``--repeat`` times, interleaved, and the median is reported with the load average seen
(the machine may be shared). Usage::

    python benchmarks/decode_bound.py                      # about 3 minutes on 2 quiet cores
    python benchmarks/decode_bound.py --images 4224 --rows 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHORT = 224
PREFETCH_SAFE = 512  # > the images the start-up prefetch may decode (48 MiB of 224-px crops: 334)


def make_workload(folder: Path, n_images: int, n_rows: int) -> dict[str, Path]:
    """The tiny CLIP, N smooth random 512-px JPEGs (quality 90) with manifests of N, S and 1 rows, and a
    manifest of R rows whose images do not exist; reused when present."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model"
    if not (model / "config.json").exists():
        sys.path.insert(0, str(HERE.parent / "tools"))
        from tiny_clip import save_tiny_hf_clip

        save_tiny_hf_clip(model)
    (folder / "img").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_images):
        path = folder / "img" / f"{i:05d}.jpg"
        base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        if not path.exists():
            Image.fromarray(base).resize((512, 512), Image.BICUBIC).save(path, quality=90)
        rows.append({"image": f"img/{i:05d}.jpg", "prompt": f"a photo of a red circle number {i % 97}"})
    out = {"model": model}
    for name, n in (("images", n_images), ("images_s", PREFETCH_SAFE), ("images_1", 1)):
        out[name] = folder / f"{name}_{n}.jsonl"
        out[name].write_text("".join(json.dumps(r) + "\n" for r in rows[:n]), encoding="utf-8")
    missing = folder / f"missing_{n_rows}.jsonl"
    if not missing.exists():
        with open(missing, "w", encoding="utf-8") as fh:
            for i in range(n_rows):
                fh.write(json.dumps({"image": f"missing/{i}.jpg", "prompt": f"a photo of a blue square number "
                                                                              f"{i % 1000}", "seed": i}) + "\n")
    out["missing"] = missing
    (folder / "missing_1.jsonl").write_text(missing.open(encoding="utf-8").readline(), encoding="utf-8")
    out["missing_1"] = folder / "missing_1.jsonl"
    return out


def images_of(manifest: Path) -> list[str]:
    with open(manifest, encoding="utf-8") as fh:
        return [str(manifest.parent / json.loads(line)["image"]) for line in fh]


def ceiling(paths: list[str], workers: int, fast: bool) -> float:
    """Images/s of *workers* threads doing only Pillow decode + RGB + bicubic resize + centre crop."""
    import numpy as np
    from PIL import Image

    def one(path: str) -> np.ndarray:
        with Image.open(path) as im:
            if fast:
                im.draft("RGB", (SHORT, SHORT))
            im = im.convert("RGB")
        w, h = im.size
        nw, nh = (SHORT, int(SHORT * h / w)) if w <= h else (int(SHORT * w / h), SHORT)
        im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
        top, left = (nh - SHORT) // 2, (nw - SHORT) // 2
        return np.asarray(im.crop((left, top, left + SHORT, top + SHORT)))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths[: 4 * workers]))  # threads started outside the timing
        start = time.perf_counter()
        for _ in pool.map(one, paths):
            pass
        return len(paths) / (time.perf_counter() - start)


def run_score(manifest: Path, model: Path, out: Path, *extra: str) -> float:
    """Wall seconds of one whole `clipgauge score` process (interpreter start-up included)."""
    cmd = [sys.executable, "-m", "clipgauge", "score", str(manifest), "--model", f"hf:{model}", "--device", "cpu",
           "--out", str(out), "--no-resume", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not out.exists():  # 1: rows that could not be scored (missing images)
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return wall


def load() -> float:
    return os.getloadavg()[0]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clipgauge-decode-bound")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rows", action="store_true", help="only the decode-bound part")
    a = ap.parse_args()
    w = make_workload(a.workdir, a.images, a.rows)
    workers = max(1, min(8, os.cpu_count() or 1))  # clipgauge score's default --workers
    paths = images_of(w["images"])
    ceiling(paths[:64], workers, False)  # warm the page cache
    out = a.workdir / "out"
    out.mkdir(exist_ok=True)
    loads: list[float] = []
    res: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        res.setdefault(key, []).append(value)
        loads.append(load())

    for rep in range(a.repeat):
        for mode, extra in (("exact", ()), ("fast", ("--fast-decode",))):
            note(f"ceiling_{mode}", ceiling(paths, workers, mode == "fast"))
            note(f"startup_{mode}", run_score(w["images_1"], w["model"], out / "one.jsonl", *extra))
            note(f"wall_s_{mode}", run_score(w["images_s"], w["model"], out / "s.jsonl", *extra))
            note(f"wall_n_{mode}", run_score(w["images"], w["model"], out / "n.jsonl", *extra))
        if not a.skip_rows:
            note("rows_startup", run_score(w["missing_1"], w["model"], out / "m1.jsonl"))
            for kind, target in (("jsonl", "rows.jsonl"), ("parquet", "rows.parquet"), ("folder", "rowsdir")):
                note(f"rows_{kind}", run_score(w["missing"], w["model"], out / target))
        print(f"repeat {rep + 1}/{a.repeat} done (load {load():.2f})", file=sys.stderr)

    n, s = len(paths), PREFETCH_SAFE
    lines = [f"decode-bound benchmark (benchmarks/decode_bound.py), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}, "
             f"Python {platform.python_version()}; load average during runs: median {median(loads):.2f}, "
             f"max {max(loads):.2f}",
             f"workload: {n} JPEGs 512x512 q90 -> 224 crop, tiny CLIP (224 px), {workers} decode threads, "
             f"median of {a.repeat}", "",
             "| path | ceiling img/s | clipgauge img/s (start-up excluded) | ratio | start-up s (1-row run) |",
             "|---|---:|---:|---:|---:|"]
    for mode, label in (("exact", "exact"), ("fast", "--fast-decode")):
        rates = [(n - s) / max(1e-9, wn - ws) for wn, ws in zip(res[f"wall_n_{mode}"], res[f"wall_s_{mode}"])]
        ceil, rate = median(res[f"ceiling_{mode}"]), median(rates)
        lines.append(f"| {label} | {ceil:.1f} | {rate:.1f} | **{rate / ceil:.1%}** | "
                     f"{median(res[f'startup_{mode}']):.2f} |")
    if not a.skip_rows:
        lines += ["", f"per-row overhead: {a.rows:,} rows with missing images, rows/s = (R-1)/(wall - wall of a 1-row "
                      f"run, {median(res['rows_startup']):.2f} s)", "",
                  "| output | wall s | rows/s | µs/row |", "|---|---:|---:|---:|"]
        for kind in ("jsonl", "parquet", "folder"):
            walls = res[f"rows_{kind}"]
            rates = [(a.rows - 1) / max(1e-9, wall - st) for wall, st in zip(walls, res["rows_startup"])]
            rate = median(rates)
            lines.append(f"| {kind} | {median(walls):.2f} | {rate:,.0f} | {1e6 / rate:.1f} |")
    print("\n".join(lines))
    print(json.dumps({k: [round(x, 3) for x in v] for k, v in res.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()

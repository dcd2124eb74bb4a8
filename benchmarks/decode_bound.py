"""The decode-bound regime and the per-row overhead of `clipgauge score`, against their ceilings, in one run.

1. **Decode ceiling**: the same number of threads as `clipgauge score` uses by default (``min(8, cores)``)
   open, decode, convert to RGB, bicubic-resize (shortest side 224, ``reducing_gap=None``) and centre-crop the
   same 512-px JPEGs with Pillow, and do nothing else (``--fast-decode``: the same after Pillow's JPEG ``draft``).
2. **clipgauge score**: the small test CLIP (``tools/tiny_clip.py``: 224 px, patch 32, width 32, 2 layers, so
   its forward pass is cheap and decoding is the limit), ``--device cpu``, default workers, ``clipgauge.score``
   (what the command runs, with the command's process setting ``keep_freed_memory``) in a fresh process, timed
   from inside by its progress callback. Start-up (process start to the end of the first chunk of 512 rows:
   imports, model load, and the images the start-up prefetch decoded while the model loaded) is stated
   separately; the scoring rate is the rows after that chunk over the time from its end to the last chunk
   scored; the finish (results file and summary) is stated separately, and the rate to the end of the run
   includes it.
3. On a CPU the model runs on the same cores as the decoders, so two more ceilings bound any pipeline that runs
   it there: the **decode + model ceiling**, measured: the same threads each decode and crop 32 images as in 1,
   turn them into the model's input with four torch ops and run the model's own forward pass
   (``get_image_features``, one torch thread), and do nothing else; and the **decode + forward bound**,
   computed: ``cores / (cores / decode ceiling + forward s/img)`` with the forward pass timed alone on one thread
   (what the cores could do if the two shared them without any contention).
4. **Per-row overhead**: R manifest rows whose image files are missing (nothing to decode: reading the manifest,
   prompts and their languages, error rows, records, writing, summary) into ``.jsonl``, ``.parquet`` and a
   results folder, timed the same way.

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
    out["images"] = folder / f"images_{n_images}.jsonl"
    out["images"].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    missing = folder / f"missing_{n_rows}.jsonl"
    if not missing.exists():
        with open(missing, "w", encoding="utf-8") as fh:
            for i in range(n_rows):
                fh.write(json.dumps({"image": f"missing/{i}.jpg", "prompt": f"a photo of a blue square number "
                                                                              f"{i % 1000}", "seed": i}) + "\n")
    out["missing"] = missing
    return out


def images_of(manifest: Path) -> list[str]:
    with open(manifest, encoding="utf-8") as fh:
        return [str(manifest.parent / json.loads(line)["image"]) for line in fh]


def _decode_crop(path: str, fast: bool):
    """Pillow decode (after ``draft`` when *fast*) + RGB + bicubic resize + centre crop: uint8 (224, 224, 3)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        if fast:
            im.draft("RGB", (SHORT, SHORT))
        im = im.convert("RGB")
    w, h = im.size
    nw, nh = (SHORT, int(SHORT * h / w)) if w <= h else (int(SHORT * w / h), SHORT)
    im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
    top, left = (nh - SHORT) // 2, (nw - SHORT) // 2
    return np.asarray(im.crop((left, top, left + SHORT, top + SHORT)))


def ceiling(paths: list[str], workers: int, fast: bool) -> float:
    """Images/s of *workers* threads doing only Pillow decode + RGB + bicubic resize + centre crop."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_decode_crop, paths[: 4 * workers], [fast] * 4 * workers))  # threads started outside the timing
        start = time.perf_counter()
        for _ in pool.map(_decode_crop, paths, [fast] * len(paths)):
            pass
        return len(paths) / (time.perf_counter() - start)


def model_ceiling(paths: list[str], workers: int, fast: bool, model: Path, batch: int = 32) -> float:
    """Images/s of *workers* threads that each decode and crop 32 images as :func:`ceiling` does, then turn them
    into the model's input (uint8 -> float32, rescale, subtract the mean, divide by the std: torch ops) and run
    the model's own image forward pass (transformers ``get_image_features``, one torch thread per call), and do
    nothing else: what a plain pipeline that runs the model on the same cores reaches, measured."""
    import numpy as np
    import torch
    from transformers import CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    m = CLIPModel.from_pretrained(model).eval()
    cfg = json.loads((model / "preprocessor_config.json").read_text())
    mean = torch.tensor(cfg["image_mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["image_std"], dtype=torch.float32).view(1, 3, 1, 1)

    def chunk(group: list[str]) -> None:
        crops = torch.from_numpy(np.stack([_decode_crop(p, fast) for p in group]))
        x = crops.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).sub_(mean).div_(std)
        with torch.inference_mode():
            m.get_image_features(pixel_values=x)

    groups = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(chunk, groups[:workers]))  # threads started and the model warm outside the timing
            start = time.perf_counter()
            for _ in pool.map(chunk, groups):
                pass
            return len(paths) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


CHILD = """
import json, sys, time
t0 = time.perf_counter()
from clipgauge.cli.process import keep_freed_memory
keep_freed_memory()  # the process setting the clipgauge command applies
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.runs import score
manifest, model, out, fast = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
marks = []
def progress(total):
    marks.append((0, time.perf_counter()))
    def update(n):
        marks.append((marks[-1][0] + n, time.perf_counter()))
    return update
score(manifest, out, ScoreOptions(model="hf:" + model, device="cpu", fast_decode=fast), resume=False,
      progress=progress)
end = time.perf_counter()
print(json.dumps({"t0": t0, "marks": marks, "end": end}))
"""


def run_score(manifest: Path, model: Path, out: Path, fast: bool = False, src: Path | None = None
              ) -> dict[str, float]:
    """One whole process running ``clipgauge.score`` (what ``clipgauge score`` runs), timed from inside.

    ``startup``: process start to the end of the first chunk of rows (imports, model load, and the first 512
    rows, which the start-up prefetch may have decoded while the model loaded); ``rate``: the rows after that
    chunk over the time from its end to the end of the run (scoring, writing the output, the summary);
    ``scoring``: the same up to the last chunk scored (without the writing and the summary); ``finish``: the
    seconds from the last chunk scored to the end (results file consolidated, summary); ``total``: the process's
    wall time. The chunk is the first mark at or past 512 rows (progress advances per chunk or per batch, as the
    version measured reports it). *src*: another checkout's ``src/`` put first on the path (``--baseline-src``)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(manifest), str(model), str(out), "1" if fast else "0"],
                          capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"scoring {manifest} failed:\n{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    marks = doc["marks"]
    first_rows, first_t = next((m for m in marks[1:] if m[0] >= 512), marks[-1])
    rows = marks[-1][0]
    last_t = marks[-1][1]
    return {"startup": first_t - doc["t0"] + (total - (doc["end"] - doc["t0"])),
            "rate": (rows - first_rows) / max(1e-9, doc["end"] - first_t),
            "scoring": (rows - first_rows) / max(1e-9, last_t - first_t), "finish": doc["end"] - last_t,
            "total": total}


def forward_cost(model: Path, batch: int = 32, repeat: int = 20) -> float:
    """Seconds per image of the model's own image forward pass (transformers ``get_image_features``) on one torch
    thread, nothing else running: the CPU work no pipeline that runs the model on the same cores can avoid."""
    import torch
    from transformers import CLIPModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = CLIPModel.from_pretrained(model).eval()
        x = torch.randn(batch, 3, SHORT, SHORT)
        with torch.inference_mode():
            for _ in range(3):
                m.get_image_features(pixel_values=x)
            start = time.perf_counter()
            for _ in range(repeat):
                m.get_image_features(pixel_values=x)
            return (time.perf_counter() - start) / (repeat * batch)
    finally:
        torch.set_num_threads(threads)


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
    ap.add_argument("--baseline-src", type=Path, metavar="DIR",
                    help="also time the clipgauge whose package is in DIR, interleaved (e.g. an earlier commit's src/: "
                         "git worktree add /tmp/old COMMIT, then --baseline-src /tmp/old/src)")
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
        note("forward", forward_cost(w["model"]))
        for mode in ("exact", "fast"):
            note(f"ceiling_{mode}", ceiling(paths, workers, mode == "fast"))
            note(f"model_ceiling_{mode}", model_ceiling(paths, workers, mode == "fast", w["model"]))
            for tag, src in (("", None), ("base_", a.baseline_src)) if a.baseline_src else (("", None),):
                r = run_score(w["images"], w["model"], out / "n.jsonl", fast=mode == "fast", src=src)
                for k, v in r.items():
                    note(f"{tag}{k}_{mode}", v)
        if not a.skip_rows:
            for kind, target in (("jsonl", "rows.jsonl"), ("parquet", "rows.parquet"), ("folder", "rowsdir")):
                for tag, src in (("", None), ("base_", a.baseline_src)) if a.baseline_src else (("", None),):
                    r = run_score(w["missing"], w["model"], out / target, src=src)
                    for k, v in r.items():
                        note(f"{tag}rows_{k}_{kind}", v)
        print(f"repeat {rep + 1}/{a.repeat} done (load {load():.2f})", file=sys.stderr)

    n = len(paths)
    lines = [f"decode-bound benchmark (benchmarks/decode_bound.py), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}, "
             f"Python {platform.python_version()}; load average during runs: median {median(loads):.2f}, "
             f"max {max(loads):.2f}",
             f"workload: {n} JPEGs 512x512 q90 -> 224 crop, tiny CLIP (224 px), {workers} decode threads, "
             f"median of {a.repeat}", "",
             f"the model's own forward pass on one thread: {median(res['forward']) * 1e3:.3f} ms per image; the "
             "decode + model ceiling is measured (the same threads decode, normalise and run the model, nothing "
             "else); the decode + forward bound is cores / (cores / decode ceiling + forward s/img)", "",
             "| path | decode ceiling img/s | clipgauge img/s, scoring | ratio | decode + model ceiling (measured) "
             "| its ratio to the decode ceiling | clipgauge's ratio to it | decode + forward bound | "
             "img/s to the end of the run | ratio | start-up s | finish s | process wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cores = min(workers, os.cpu_count() or 1)
    for mode, label in (("exact", "exact"), ("fast", "--fast-decode")):
        ceil, rate, scoring = (median(res[f"{k}_{mode}"]) for k in ("ceiling", "rate", "scoring"))
        both = cores / (cores / ceil + median(res["forward"]))
        with_model = median(res[f"model_ceiling_{mode}"])
        lines.append(f"| {label} | {ceil:.1f} | {scoring:.1f} | **{scoring / ceil:.1%}** | {with_model:.1f} | "
                     f"{with_model / ceil:.1%} | **{scoring / with_model:.1%}** | {both:.1f} | "
                     f"{rate:.1f} | {rate / ceil:.1%} | {median(res[f'startup_{mode}']):.2f} | "
                     f"{median(res[f'finish_{mode}']):.2f} | {median(res[f'total_{mode}']):.2f} |")
    if a.baseline_src:
        lines += ["", f"against the baseline clipgauge in {a.baseline_src} (same workload, interleaved, median of "
                      f"{a.repeat}): this / baseline", "", "| measure | this | baseline | ratio |",
                  "|---|---:|---:|---:|"]
        keys = [f"{k}_{mode}" for mode in ("exact", "fast") for k in ("scoring", "rate", "total")]
        if not a.skip_rows:
            keys += [f"rows_{k}_{kind}" for kind in ("jsonl", "parquet", "folder") for k in ("rate", "total")]
        for key in keys:
            this, base = median(res[key]), median(res["base_" + key])
            lines.append(f"| {key} | {this:,.2f} | {base:,.2f} | **{this / base:.3f}** |")
    if not a.skip_rows:
        lines += ["", f"per-row overhead: {a.rows:,} manifest rows whose images are missing (start-up excluded: "
                      "rows after the first chunk, to the end of the run)", "",
                  "| output | rows/s to the end | µs/row | rows/s scoring | finish s | start-up s | process wall s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for kind in ("jsonl", "parquet", "folder"):
            rate = median(res[f"rows_rate_{kind}"])
            lines.append(f"| {kind} | {rate:,.0f} | {1e6 / rate:.1f} | {median(res[f'rows_scoring_{kind}']):,.0f} | "
                         f"{median(res[f'rows_finish_{kind}']):.2f} | {median(res[f'rows_startup_{kind}']):.2f} | "
                         f"{median(res[f'rows_total_{kind}']):.2f} |")
    print("\n".join(lines))
    print(json.dumps({k: [round(x, 3) for x in v] for k, v in res.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()

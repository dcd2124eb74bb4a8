"""Scaling of the Ray engine from 1 to N scoring actors, against the local engine, on one WebDataset input.

Builds a full-size CLIP architecture with random weights (weights do not change speed; ``vit-b-32`` by
default, the LAION/DataComp filtering model), writes a WebDataset of 512×512 JPEGs (PartiPrompts captions
when the shared copy is present), then times, each in a fresh process:

* ``local``   — the local engine, torch with 1 thread, 1 decode thread;
* ``ray×N``   — the Ray engine with N actors (``--ray-workers N``), each 1 CPU (so torch runs 1 thread in
  each, as Ray sets ``OMP_NUM_THREADS`` from the reservation) and 1 decode thread, on a local Ray
  instance. With GPUs (``--device cuda``) each actor gets one GPU instead.

Reported per run: wall time of the whole ``run_sharded`` call (Ray start-up, actor start-up and model
loads included) and the steady-state throughput — rows committed after the first burst of commits divided
by the time from that burst to the last commit. Also the CPU cost of decoding + preprocessing one image (one
core), which is what bounds a GPU actor's throughput. Results go to ``benchmarks/SCALING.md``. Usage::

    python benchmarks/scaling.py --rows 512 --workers 1 2 --repeats 2            # this machine (CPU)
    python benchmarks/scaling.py --device cuda --rows 20000 --workers 1 2 4 8     # a GPU machine
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import build_model, read_prompts  # noqa: E402 - a sibling benchmark script


def make_webdataset(folder: Path, rows: int, per_tar: int = 64, size: int = 512) -> Path:
    """``folder/00000.tar`` …: smooth random JPEGs (quality 90) with a caption each; reused when present."""
    import numpy as np
    from PIL import Image

    done = folder / f"_done_{rows}"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    prompts = read_prompts(max(rows, 1))
    for t in range(0, rows, per_tar):
        with tarfile.open(folder / f"{t // per_tar:05d}.tar", "w") as tar:
            for i in range(t, min(rows, t + per_tar)):
                base = rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8)
                buf = io.BytesIO()
                Image.fromarray(base).resize((size, size), Image.BICUBIC).save(buf, "JPEG", quality=90)
                for ext, data in (("jpg", buf.getvalue()), ("txt", prompts[i % len(prompts)].encode())):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    done.write_text("")
    return folder


def child(a: argparse.Namespace) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from clipgauge.engines import RayOptions
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score

    workers = a.workers[0]
    kwargs = dict(model=f"hf:{a.model_dir}", device=a.device, batch_size=a.batch_size, num_workers=1,
                  precision=a.precision)  # ScoreOptions fields
    ray_opts = None
    if a.engine == "ray":
        import ray

        gpus = torch.cuda.device_count() if a.device.startswith("cuda") else 0
        ray.init(num_cpus=workers + 1, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
        ray_opts = RayOptions(workers=workers, gpus_per_worker=1.0 if gpus else 0.0, cpus_per_worker=1.0)
        if a.device == "cpu":
            kwargs["device"] = "cpu"
    else:
        torch.set_num_threads(a.torch_threads)
    out = Path(a.out)
    t0 = time.perf_counter()
    result = score(a.input, out, ScoreOptions(**kwargs), engine=a.engine, shard_size=a.shard_size, ray=ray_opts)
    wall = time.perf_counter() - t0
    return {"engine": a.engine, "workers": workers, "rows": result.summary["rows"], "wall_s": wall,
            "steady_img_s": steady_throughput(out), "errors": result.n_errors}


def steady_throughput(out: Path, gap_s: float = 0.25) -> float:
    """Rows/s between the first and the last commit, start-up excluded.

    Parts are committed in bursts (all shards of one scored chunk or actor batch at once): the rows of the
    first burst (parts within *gap_s* of the first commit) were scored before the clock starts, so they
    are not counted.
    """
    import pyarrow.parquet as pq

    parts = sorted((p.stat().st_mtime, pq.read_metadata(p).num_rows) for p in out.glob("part-*.parquet"))
    first_burst = [t for t, _ in parts if t <= parts[0][0] + gap_s]
    start, end = first_burst[-1], parts[-1][0]
    rows = sum(n for t, n in parts if t > start)
    return rows / (end - start) if end > start else float("nan")


def decode_cost(model_dir: Path, folder: Path, n: int = 48) -> float:
    """Milliseconds of one core to decode + preprocess one image (clipgauge's exact path)."""
    from clipgauge.decode import load_image
    from clipgauge.encoders.hf import HFEncoder
    from clipgauge.sources.detect import open_source

    enc = HFEncoder(str(model_dir))
    images = [r.image for _, r in zip(range(n), open_source(folder).rows())]
    t = time.perf_counter()
    for data in images:
        enc.preprocess(load_image(data))
    return 1000 * (time.perf_counter() - t) / len(images)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vit-b-32", choices=("vit-b-32", "vit-b-16", "vit-l-14"))
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "clipgauge-scaling")
    p.add_argument("--results", type=Path, default=HERE / "SCALING.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a)))
        return

    model_dir = build_model(a.arch, a.work / f"model_{a.arch}")
    data = make_webdataset(a.work / f"wds_{a.rows}", a.rows)
    configs = [("local", 1)] + [("ray", w) for w in a.workers]
    runs = []
    load = os.getloadavg()[0]
    for rep in range(a.repeats):
        for engine, workers in configs:
            out = Path(tempfile.mkdtemp(dir=a.work)) / "out"
            cmd = [sys.executable, __file__, "--child", "--engine", engine, "--workers", str(workers),
                   "--model-dir", str(model_dir), "--input", str(data), "--out", str(out), "--shard-size",
                   str(a.shard_size), "--batch-size", str(a.batch_size), "--device", a.device, "--precision",
                   a.precision]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
            if proc.returncode != 0:
                sys.exit(proc.stderr[-2000:])
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["repeat"] = rep
            runs.append(r)
            print(json.dumps(r), flush=True)
    ms = decode_cost(model_dir, data)
    write_results(a, runs, ms, load)


def write_results(a: argparse.Namespace, runs: list[dict], decode_ms: float, load: float) -> None:
    def best(engine: str, workers: int, key: str) -> float:
        vals = [r[key] for r in runs if r["engine"] == engine and r["workers"] == workers]
        return max(vals) if key == "steady_img_s" else min(vals)

    base = best("ray", min(a.workers), "steady_img_s")
    lines = [
        "# Ray engine scaling (`benchmarks/scaling.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"(shared with other work: load average {load:.1f} at the start), device `{a.device}`, "
        f"{a.precision}. Model: {a.arch} architecture, random weights. Input: {a.rows} rows of 512×512 JPEG in "
        f"WebDataset tars, shard size {a.shard_size}, batch size {a.batch_size}. Best of {a.repeats} runs.",
        "",
        "| engine | actors | wall s (incl. start-up) | steady img/s | speed-up vs 1 actor |",
        "|---|---|---|---|---|",
    ]
    for engine, workers in [("local", 1)] + [("ray", w) for w in a.workers]:
        steady = best(engine, workers, "steady_img_s")
        speed = f"{steady / base:.2f}×" if engine == "ray" else "-"
        lines.append(f"| {engine} | {workers if engine == 'ray' else '-'} | {best(engine, workers, 'wall_s'):.1f} | "
                     f"{steady:.1f} | {speed} |")
    lines += ["", f"Decode + preprocess (clipgauge's exact path, one core): {decode_ms:.1f} ms per 512×512 JPEG "
              f"→ about {1000 / decode_ms:.0f} img/s per core.", "", "Raw runs:", "", "```"]
    lines += [json.dumps(r) for r in runs] + ["```", ""]
    a.results.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""What a second metric on the same backbone costs: `clipgauge score --metric clip --metric aesthetic` against
`--metric clip` alone, on one ViT-L/14-shaped CLIP (issue #12: within 10 %, since the backbone is shared).

Builds a random-weight CLIP with ViT-L/14 shapes (weights do not change speed) and a random LAION aesthetic v2
head in its published layout (``layers.0/2/4/6/7``, 768→1024→128→64→16→1), writes a PartiPrompts-shaped
workload of 512 px JPEGs, and times both commands as whole processes, interleaved, ``--repeat`` times each;
the median is reported, with the ratio and the per-pair agreement of the shared ``cosine`` column. Usage::

    python benchmarks/metrics_overhead.py --prompts 32 --per-prompt 2 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import build_model, make_workload, read_jsonl  # noqa: E402


def build_head(path: Path, width: int = 768) -> Path:
    """A random aesthetic v2 head (no activations), saved as the published ``.pth`` state dict."""
    if path.exists():
        return path
    import torch

    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(width, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128),
                                 torch.nn.Dropout(0.2), torch.nn.Linear(128, 64), torch.nn.Dropout(0.1),
                                 torch.nn.Linear(64, 16), torch.nn.Linear(16, 1))
    torch.save({f"layers.{k}": v for k, v in layers.state_dict().items()}, path)
    return path


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--per-prompt", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clipgauge-metrics")
    a = ap.parse_args()
    model = build_model("vit-l-14", a.workdir / "model-vit-l-14")
    head = build_head(a.workdir / "sac+logos+ava1-l14-linearMSE.pth")
    manifest = make_workload(a.workdir / "workload", a.prompts, a.per_prompt)
    exe = [sys.executable, "-m", "clipgauge"]
    base = [*exe, "score", str(manifest), "--model", f"hf:{model}", "--device", a.device, "--no-resume"]
    cmds = {
        "clip": base + ["--metric", "clip", "--out", str(a.workdir / "clip.jsonl")],
        "clip+aesthetic": base + ["--metric", "clip", "--metric", f"aesthetic:head={head},model=hf:{model}",
                                  "--out", str(a.workdir / "both.jsonl")],
    }
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(a.repeat):  # interleaved, so a slow spell of the machine hits both alike
        for name, cmd in cmds.items():
            walls[name].append(timed(cmd))
    n = a.prompts * a.per_prompt
    print(f"# ViT-L/14 shapes, {n} pairs (512 px JPEG), device {a.device}, {os.cpu_count()} CPUs, "
          f"median of {a.repeat}, {time.strftime('%Y-%m-%d')}")
    med = {k: statistics.median(v) for k, v in walls.items()}
    for name, v in walls.items():
        print(f"{name:>15}: {med[name]:7.2f} s whole process (runs: {[round(x, 2) for x in v]}), "
              f"{n / med[name]:.2f} pairs/s")
    print(f"clip+aesthetic / clip wall time: {med['clip+aesthetic'] / med['clip']:.3f} (target <= 1.10)")
    one = read_jsonl(a.workdir / "clip.jsonl")
    both = read_jsonl(a.workdir / "both.jsonl")
    diff = max(abs(x["cosine"] - y["cosine"]) for x, y in zip(one, both))
    print(f"cosine column, clip alone vs with aesthetic: max |dcos| {diff:.2e}; "
          f"aesthetic mean {statistics.mean(r['aesthetic'] for r in both):.4f}")


if __name__ == "__main__":
    main()

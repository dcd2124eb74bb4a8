"""Does this CPU compute in bf16? A bf16 matmul of ViT-B/32's MLP shape against fp32, in one run.

CPUs with AVX512-BF16 or AMX multiply bf16 natively; others make PyTorch emulate it, many times slower than fp32.
``clipgauge.scoring.device.cpu_has_native_bf16`` tells which (torch's probes, else ``/proc/cpuinfo``); this prints
it, the flags, and the measured ratio, so a bf16 throughput number is only quoted where bf16 is real. Usage::

    python benchmarks/cpu_bf16.py [--tokens 1600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from clipgauge.scoring.device import cpu_has_native_bf16


def timed(a: torch.Tensor, b: torch.Tensor, repeat: int) -> float:
    """Median seconds of ``a @ b``."""
    a @ b  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=1600, help="rows: 32 images x 50 ViT-B/32 tokens")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    flags = set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = set(next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), []))
    native = cpu_has_native_bf16()
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, capability "
          f"{torch.backends.cpu.get_cpu_capability()}, flags avx512_bf16={'avx512_bf16' in flags} "
          f"amx_bf16={'amx_bf16' in flags}, native bf16: {native}, {time.strftime('%Y-%m-%d')}")
    torch.manual_seed(0)
    x, w = torch.randn(a.tokens, 768), torch.randn(768, 3072)
    fp32 = timed(x, w, a.repeat)
    bf16 = timed(x.bfloat16(), w.bfloat16(), a.repeat)
    print(f"({a.tokens} x 768) @ (768 x 3072): fp32 {1e3 * fp32:.1f} ms, bf16 {1e3 * bf16:.1f} ms "
          f"(bf16 / fp32 time {bf16 / fp32:.2f}x)")
    if not native:
        print("bf16 throughput not reported: this CPU has no AVX512-BF16 or AMX, so PyTorch emulates bf16 "
              "(the ratio above); use fp32 here")


if __name__ == "__main__":
    main()

"""Device and precision choices."""

from __future__ import annotations

import contextlib

import torch

from ..errors import PrecisionWarning, UsageError
from .precision import PRECISION_EFFECTS, PRECISIONS

__all__ = ["PRECISIONS", "PRECISION_EFFECTS", "PrecisionWarning", "autocast", "check_precision", "cpu_has_native_bf16",
           "precision_warning", "resolve_device"]



def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; otherwise the named device, checked."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device '{device}' requested but CUDA is not available on this machine")
    return dev


def check_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is for GPUs; on CPU use bf16 or fp32 precision",
                         cli="fp16 is for GPUs; on CPU use --precision bf16 or fp32")
    return precision


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); None when it cannot be told.

    torch's own probes first (what its kernels will use), else the CPU flags of ``/proc/cpuinfo``
    (``avx512_bf16``, ``amx_bf16``). Without either, bf16 matmuls are emulated: 5.4x slower than fp32 on an
    AVX-512 Xeon without them, and 7.8 s against 59 ms on an AVX2-only AMD EPYC (issue #15).
    """
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        return bool(probe() or (amx is not None and amx()))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & set(flags))


def precision_warning(precision: str, device: torch.device) -> str | None:
    """A one-line warning when the chosen precision will be slower than fp32 on this device."""
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        return ("this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated and runs 5x to 130x "
                "slower than fp32 (benchmarks/RESULTS.md); fp32 is exact and faster on this machine")
    return None


def autocast(precision: str, device: torch.device):
    """Autocast context for the encoders' forward pass (no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)

"""Device and precision choices."""

from __future__ import annotations

import contextlib

import torch

from ..errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")


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
        raise UsageError("fp16 is for GPUs; on CPU use --precision bf16 or fp32")
    return precision


def autocast(precision: str, device: torch.device):
    """Autocast context for the encoders' forward pass (no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)

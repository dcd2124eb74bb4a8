"""Reading a weight file safely: safetensors, or ``torch.load(weights_only=True)`` (no code from the file runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError


def read_weights(path: Path, what: str) -> Any:
    """What the file at *path* holds (a safetensors file gives its tensors; a PyTorch file what
    ``torch.load(weights_only=True)`` accepts: tensors in dicts and lists). *what* names the file in the one-line
    :class:`~clipgauge.errors.ModelLoadError` raised when it cannot be read that way."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable or unsafe file is the user's to fix: one line
        reason = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"cannot read {what} {path} (safetensors, or torch.load with weights_only=True): "
                             f"{reason}") from None

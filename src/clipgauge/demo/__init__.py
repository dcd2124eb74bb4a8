"""Offline demo assets: a procedural scene renderer and a small CLIP trained on its scenes."""

from __future__ import annotations

from pathlib import Path

#: Folder of the bundled demo CLIP (Hugging Face ``CLIPModel`` format, loads with ``from_pretrained``).
MODEL_DIR = Path(__file__).parent / "model"

__all__ = ["MODEL_DIR"]

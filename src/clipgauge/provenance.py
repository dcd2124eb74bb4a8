"""Provenance helpers that need no model: library versions and file hashes.

A leaf module (it imports only ``clipgauge._version`` and ``clipgauge.hashing``). What a scorer records about
its model, preprocessing and precision is :func:`clipgauge.scoring.provenance.scorer_provenance`.
"""

from __future__ import annotations

import sys
from importlib import metadata

from ._version import __version__
from .hashing import file_sha256

_PACKAGES = ("torch", "transformers", "open_clip_torch", "pillow", "numpy", "scipy", "pyarrow", "tokenizers")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that can change a score."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "clipgauge": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


__all__ = ["file_sha256", "library_versions"]

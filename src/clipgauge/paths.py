"""Paths as text: how a row's image path is kept (a string, not a ``Path`` per row) and named in reasons."""

from __future__ import annotations

import os
from pathlib import Path


def path_text(path: str | os.PathLike) -> str:
    """``str(Path(path))``, the form in which reasons name a path, without making a ``Path`` when *path* is a string
    in that form already (no empty or ``.`` component, no trailing ``/``): a manifest row's path costs no parse."""
    if (isinstance(path, str) and path and os.sep == "/" and "//" not in path and "/./" not in path
            and not path.startswith("./") and not path.endswith(("/", "/.")) and path != "."):
        return path
    return str(Path(path))


def resolve_path(value: str | os.PathLike, base: str | os.PathLike) -> Path:
    """*value* as a ``Path`` (``~`` expanded): as given when absolute, else relative to the folder *base*."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(base) / p


_POSIX = os.sep == "/" and os.altsep is None


def image_path(image: str, base: str) -> str | Path:
    """A manifest row's image path *image* (non-empty) read relative to the manifest's folder *base*: the text
    ``str(Path(base) / image)`` (no ``Path`` made) for a relative path; :func:`resolve_path` otherwise."""
    if image[0] == "~" or (image[0] == "/" if _POSIX else os.path.isabs(image)):  # POSIX isabs: a leading /
        return resolve_path(image, base)
    return path_text(image if base == "." else base + "/" + image if base != "/" else "/" + image)

"""The model-run options several commands share (``--device``, ``--batch-size``, ``--precision``,
``--max-image-bytes``): one definition of each type and default; each command keeps its own help text."""

from __future__ import annotations

import re
from typing import Any

import click

from ..image_files import DEFAULT_MAX_IMAGE_BYTES
from ..scoring.precision import PRECISIONS  # (no torch import)


def device_option(default: str = "auto") -> Any:
    """``--device``: auto, cpu, cuda or cuda:N."""
    return click.option("--device", default=default, show_default=True, help="auto, cpu, cuda or cuda:N.")


def batch_size_option(help: str | None = None) -> Any:  # noqa: A002 - click's own keyword
    """``--batch-size``: images per forward pass, at least 1 (32 by default)."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help=help)


def precision_option(help: str | None = None) -> Any:  # noqa: A002 - click's own keyword
    """``--precision``: one of the precisions (fp32 by default)."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True, help=help)


_BYTE_UNITS = {"": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30}


class ByteSize(click.ParamType):
    """A size in bytes: an integer, or one with a binary suffix (``K``/``KiB``, ``M``/``MiB``, ``G``/``GiB``,
    powers of 1024), at least 1."""

    name = "BYTES"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(value))
            unit = _BYTE_UNITS.get(match.group(2).lower()) if match else None
            if unit is None:
                self.fail(f"'{value}' is not a size in bytes (e.g. 536870912, 512M, 1G)", param, ctx)
            n = int(match.group(1)) * unit
        if n < 1:
            self.fail(f"{value} is not a size of at least 1 byte", param, ctx)
        return n


def max_image_bytes_option() -> Any:
    """``--max-image-bytes``: the size limit of an image (file, or bytes in a Parquet cell, tar member or dataset)."""
    return click.option("--max-image-bytes", type=ByteSize(), default=DEFAULT_MAX_IMAGE_BYTES,
                        show_default="512M", metavar="BYTES",
                        help="Images larger than this (files, or image bytes in Parquet, WebDataset or HF datasets) "
                             "are error rows and are never read whole: a number of bytes, or with K, M or G "
                             "(powers of 1024).")

"""The model-run options several commands share (``--device``, ``--batch-size``, ``--precision``): one definition of
each type and default; each command keeps its own help text."""

from __future__ import annotations

from typing import Any

import click

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

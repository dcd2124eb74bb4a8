"""The options several commands share (``--model``, ``--device``, ``--batch-size``, ``--precision``, ``--workers``,
``--prompt-prefix``, ``--trust-remote-code``, ``--max-image-bytes``): one declaration of each name, type and
default; a command adds its own words to the help where its meaning differs.

``--model``'s help lists the model families from the registry (built-ins and installed plugins) when the help is
shown, so it never falls behind the families clipgauge knows.
"""

from __future__ import annotations

import re
from typing import Any

import click

from ..defaults import DEFAULT_MODEL
from ..image_files import DEFAULT_MAX_IMAGE_BYTES
from ..scoring.precision import PRECISIONS  # (no torch import)


class ModelOption(click.Option):
    """A ``--model`` option whose help ends with the spec forms of every registered model family, read from the
    registry when the help is shown (``clipgauge.encoders.registry.model_forms``)."""

    def __init__(self, *args: Any, lead: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lead = lead

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from ..encoders.registry import model_forms

        self.help = f"{self.lead}: {model_forms()} (see 'clipgauge metrics')."
        return super().get_help_record(ctx)


def model_option(lead: str, *, default: str | None = DEFAULT_MODEL, multiple: bool = False, required: bool = False,
                 dest: str = "model", metavar: str | None = None) -> Any:
    """``--model``: a model spec (the default model unless *default* says otherwise). *lead* says what the model
    is for in this command; the help adds every family's spec form."""
    extra: dict[str, Any] = {"show_default": True} if default is not None and not multiple else {}
    return click.option("--model", dest, cls=ModelOption, lead=lead, default=None if multiple else default,
                        multiple=multiple, required=required, metavar=metavar, **extra)


def workers_option() -> Any:
    """``--workers``: image decode threads, at least 1 (default: the CPU count, at most 8)."""
    return click.option("--workers", type=click.IntRange(min=1), default=None,
                        help="Threads that decode images (default: CPU count, at most 8).")


def prompt_prefix_option(help: str | None = None, *, default: str | None = "",  # noqa: A002 - click's keyword
                         metavar: str | None = None) -> Any:
    """``--prompt-prefix``: text put before every prompt ('' by default; a command may default to None and
    choose one itself, saying so in *help*)."""
    return click.option("--prompt-prefix", default=default, metavar=metavar,
                        help=help or "Text put before every prompt, e.g. 'a photo of '.")


def trust_remote_code_option() -> Any:
    """``--trust-remote-code``: a flag, off by default."""
    return click.option("--trust-remote-code", is_flag=True,
                        help="Allow custom model code from the hub (off by default).")


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

"""Where tracker results go. Writers with optional dependencies are imported only when used.

:func:`make_writer` turns a spec into a writer:

=====================================  ==========================================================
spec                                   writer
=====================================  ==========================================================
``"tensorboard:DIR"`` / ``"tb:DIR"``   :class:`TensorBoardWriter` (extra ``tensorboard``)
``"wandb"`` / ``"wandb:PROJECT"``      :class:`WandbWriter` on the active run, or a new run (extra ``wandb``)
``"csv:PATH"`` or ``PATH.csv``         :class:`CSVWriter`
``"jsonl:PATH"`` or ``PATH.jsonl``     :class:`JSONLWriter`
a ``SummaryWriter``                    :class:`TensorBoardWriter` writing into it
a W&B run                              :class:`WandbWriter` logging into it
a :class:`Writer` (or any object       used as is
with a ``write(result)`` method)
=====================================  ==========================================================
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from .base import Writer
from .files import CSVWriter, JSONLWriter

__all__ = ["CSVWriter", "JSONLWriter", "Writer", "make_writer", "TensorBoardWriter", "WandbWriter"]


def __getattr__(name: str) -> Any:  # lazy: importing this package never imports tensorboard or wandb
    if name == "TensorBoardWriter":
        from .tensorboard import TensorBoardWriter

        return TensorBoardWriter
    if name == "WandbWriter":
        from .wandb import WandbWriter

        return WandbWriter
    raise AttributeError(name)


def make_writer(spec: Any) -> tuple[Any, bool]:
    """``(writer, made_here)`` for a writer spec (see the module docstring). Writers made here are closed by
    the tracker (closing never closes a SummaryWriter or W&B run the user passed in); a :class:`Writer` the
    user made is only flushed. Raises :class:`UsageError` for an unknown spec."""
    if isinstance(spec, str):
        kind, sep, arg = spec.partition(":")
        if kind in ("tensorboard", "tb") and sep and arg:
            from .tensorboard import TensorBoardWriter

            return TensorBoardWriter(arg), True
        if kind == "wandb":
            from .wandb import WandbWriter

            return (WandbWriter(project=arg) if arg else WandbWriter()), True
        if kind == "csv" and arg:
            return CSVWriter(arg), True
        if kind == "jsonl" and arg:
            return JSONLWriter(arg), True
        if spec.lower().endswith(".csv"):
            return CSVWriter(spec), True
        if spec.lower().endswith((".jsonl", ".ndjson")):
            return JSONLWriter(spec), True
        raise UsageError(f"unknown writer '{spec}': use tensorboard:DIR, wandb[:PROJECT], csv:PATH or jsonl:PATH")
    if hasattr(spec, "add_scalar") and hasattr(spec, "add_image"):
        from .tensorboard import TensorBoardWriter

        return TensorBoardWriter(summary_writer=spec), True
    if hasattr(spec, "log") and hasattr(spec, "finish"):
        from .wandb import WandbWriter

        return WandbWriter(run=spec), True
    if hasattr(spec, "write") and callable(spec.write):
        return spec, False
    raise UsageError(f"cannot write tracker results to {type(spec).__name__}: give a writer spec or a Writer")

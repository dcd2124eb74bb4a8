"""Where tracker results go. Writers with optional dependencies are imported only when used.

:func:`make_writer` turns a spec into a writer, asking each registered :class:`WriterKind` in turn (a new kind is
one module and a :func:`register_writer_kind` call; why writers are not results sinks: see :mod:`.registry`):

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

from .base import Writer
from .files import CSVWriter, JSONLWriter
from .registry import WriterKind, make_writer, register_writer_kind, writer_kinds

__all__ = ["CSVWriter", "JSONLWriter", "TensorBoardWriter", "WandbWriter", "Writer", "WriterKind", "make_writer",
           "register_writer_kind", "writer_kinds"]


def __getattr__(name: str) -> Any:  # lazy: importing this package never imports tensorboard or wandb
    if name == "TensorBoardWriter":
        from .tensorboard import TensorBoardWriter

        return TensorBoardWriter
    if name == "WandbWriter":
        from .wandb import WandbWriter

        return WandbWriter
    raise AttributeError(name)


def _tensorboard(arg: str = "", *, summary_writer: Any = None) -> Writer:
    from .tensorboard import TensorBoardWriter

    return TensorBoardWriter(summary_writer=summary_writer) if summary_writer is not None else TensorBoardWriter(arg)


def _wandb(arg: str = "", *, run: Any = None) -> Writer:
    from .wandb import WandbWriter

    if run is not None:
        return WandbWriter(run=run)
    return WandbWriter(project=arg) if arg else WandbWriter()


register_writer_kind(WriterKind(
    "tensorboard", _tensorboard, "tensorboard:DIR", prefixes=("tensorboard", "tb"),
    wraps=lambda o: hasattr(o, "add_scalar") and hasattr(o, "add_image"),
    wrap=lambda o: _tensorboard(summary_writer=o)))
register_writer_kind(WriterKind(
    "wandb", _wandb, "wandb[:PROJECT]", prefixes=("wandb",), arg_optional=True,
    wraps=lambda o: hasattr(o, "log") and hasattr(o, "finish"), wrap=lambda o: _wandb(run=o)))
register_writer_kind(WriterKind("csv", CSVWriter, "csv:PATH", prefixes=("csv",), extensions=(".csv",)))
register_writer_kind(WriterKind("jsonl", JSONLWriter, "jsonl:PATH", prefixes=("jsonl",),
                                extensions=(".jsonl", ".ndjson")))

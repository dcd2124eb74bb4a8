"""Settings for a process that the ``clipgauge`` command owns (never applied when clipgauge is imported).

* :func:`keep_freed_memory` — glibc returns large freed blocks to the OS at once and faults them back in
  on the next forward pass (~30k page faults per ViT-B/32 batch of 32); keeping them saves that work.
* :func:`exit_process` — a process that imported torch and transformers spends ~0.9 s tearing its modules
  down at exit. Commands whose outputs are all written and closed may skip that (``allow_fast_exit``);
  those that rely on exit hooks (Ray, W&B, TensorBoard writers) never call it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

_fast_exit = False


def keep_freed_memory() -> None:
    """Ask glibc malloc to keep freed memory for reuse (no effect elsewhere, and never an error)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB come from the heap ...
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: ... and stay there once freed
    except (OSError, AttributeError):
        pass


def allow_fast_exit() -> None:
    """Called by a command once everything it produces is written and closed."""
    global _fast_exit
    _fast_exit = True


def exit_process(code: int) -> None:
    """Exit with *code*: immediately when the command allowed it (after flushing output), else normally."""
    if _fast_exit:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)

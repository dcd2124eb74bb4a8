"""clipgauge's forward passes use torch's own attention even where the process patched it (SageAttention).

Fine-tuners enable SageAttention, or another fast kernel, by replacing
``torch.nn.functional.scaled_dot_product_attention`` for the whole process with a function that ignores
``attn_mask`` / ``is_causal`` and quantises Q and K. CLIP's text tower depends on its causal mask, so a
CLIP forward pass in such a process gives different embeddings, silently.

:func:`genuine_attention` is a context manager that, for the duration of one of clipgauge's forward passes,
puts back the genuine functions under every name that the model code looks up, and afterwards puts the
process's own functions back exactly as they were (the user's patch stays in place):

- ``torch.nn.functional`` itself (where the whole module was replaced by a shim);
- ``torch.nn.functional.scaled_dot_product_attention``: torch's op, kept by torch as
  ``torch._C._nn.scaled_dot_product_attention`` (transformers' ``sdpa_attention_forward`` and OpenCLIP's
  ``Attention`` call it; ``nn.MultiheadAttention`` reaches it through ``F.multi_head_attention_forward``);
- ``torch.nn.functional.multi_head_attention_forward`` (OpenCLIP's ``nn.MultiheadAttention`` blocks);
- the module-level ``F`` of OpenCLIP's modules, when they were imported after a shim replaced the module;
- transformers' attention registry entry ``"sdpa"`` (``AttentionInterface.register("sdpa", fn)``).

Every :class:`~clipgauge.encoders.base.Encoder` subclass's ``encode_images`` / ``encode_texts`` runs inside it
(see ``Encoder.__init_subclass__``), so the scorer, the tracker, the Lightning callback, the torchmetrics
adapter and every metric's model are covered in one place. Where a genuine function cannot be found (for
example ``torch._C._nn.scaled_dot_product_attention`` itself was replaced before clipgauge was imported), a
:class:`PatchedAttentionWarning` names it and the forward pass runs with what the process has.

Thread safety: the swap is process-wide (Python looks these names up globally). Entries are counted under a
lock: the first thread in swaps, the last one out swaps back, so concurrent and nested forward passes are
safe. While any clipgauge forward pass runs, *other* threads of the process (a training step running at the
same time) also get torch's own attention — correct results, without the patched kernel's speed. A name that
another thread re-patched during the window is left as that thread set it.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

import torch
import torch.nn.modules.activation as _activation

F = TypeVar("F", bound=Callable[..., Any])

#: the real ``torch.nn.functional`` module: torch binds it while importing itself, before any user code runs
_REAL_F: ModuleType = _activation.F
#: torch's own scaled dot-product attention op (the Python name is this very builtin unless patched)
_GENUINE_SDPA: Any = torch._C._nn.scaled_dot_product_attention
#: OpenCLIP modules that bind ``F = torch.nn.functional`` at import time
_OPENCLIP_MODULES = ("open_clip.transformer", "open_clip.model", "open_clip.modified_resnet", "open_clip.pos_embed")


class PatchedAttentionWarning(UserWarning):
    """An attention function of the process is patched and clipgauge cannot find the genuine one to use."""


def _defined_in(fn: Any, suffix: str) -> bool:
    """True when *fn* is a Python function whose source file ends with *suffix* (the library's own)."""
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename.replace("\\", "/").endswith(suffix)


def _is_builtin_sdpa(fn: Any) -> bool:
    return type(fn).__name__ == "builtin_function_or_method" and getattr(fn, "__name__", "") == \
        "scaled_dot_product_attention"


_GENUINE_MHA: Any = getattr(_REAL_F, "multi_head_attention_forward", None)
if not _defined_in(_GENUINE_MHA, "torch/nn/functional.py"):
    _GENUINE_MHA = None  # patched before clipgauge was imported: warned about when it matters

_lock = threading.Lock()
_depth = 0
#: the swaps made by the outermost entry: (getter, setter, the process's value, the genuine value)
_swaps: list[tuple[Callable[[], Any], Callable[[Any], None], Any, Any]] = []
_warned: set[str] = set()


def _attr_slot(owner: Any, name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return (lambda: getattr(owner, name, None)), (lambda value: setattr(owner, name, value))


def _slots() -> list[tuple[str, Callable[[], Any], Callable[[Any], None], Any]]:
    """(name, get, set, genuine value or None when unknown) for every name clipgauge's models look up."""
    slots = [("torch.nn.functional", *_attr_slot(torch.nn, "functional"), _REAL_F)]
    sdpa = _GENUINE_SDPA if _is_builtin_sdpa(_GENUINE_SDPA) else None
    slots.append(("torch.nn.functional.scaled_dot_product_attention",
                  *_attr_slot(_REAL_F, "scaled_dot_product_attention"), sdpa))
    slots.append(("torch.nn.functional.multi_head_attention_forward",
                  *_attr_slot(_REAL_F, "multi_head_attention_forward"), _GENUINE_MHA))
    for name in _OPENCLIP_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "F"):
            slots.append((f"{name}.F", *_attr_slot(module, "F"), _REAL_F))
    slots.extend(_transformers_slots())
    return slots


def _transformers_slots() -> list[tuple[str, Callable[[], Any], Callable[[Any], None], Any]]:
    """The registry entry ``"sdpa"`` of transformers' attention interface, when transformers is loaded."""
    modeling = sys.modules.get("transformers.modeling_utils")
    sdpa_module = sys.modules.get("transformers.integrations.sdpa_attention")
    registry = getattr(modeling, "ALL_ATTENTION_FUNCTIONS", None)
    if registry is None or sdpa_module is None:
        return []
    genuine = getattr(sdpa_module, "sdpa_attention_forward", None)
    if not _defined_in(genuine, "transformers/integrations/sdpa_attention.py"):
        genuine = None
    slots = []
    global_map = getattr(type(registry), "_global_mapping", None)
    if isinstance(global_map, dict):
        slots.append(("transformers AttentionInterface 'sdpa'", lambda: global_map.get("sdpa"),
                      lambda value: global_map.__setitem__("sdpa", value), genuine))
    local_map = getattr(registry, "_local_mapping", None)
    if isinstance(local_map, dict) and "sdpa" in local_map:
        slots.append(("transformers ALL_ATTENTION_FUNCTIONS['sdpa']", lambda: local_map.get("sdpa"),
                      lambda value: local_map.__setitem__("sdpa", value), genuine))
    return slots


def _is_patched(name: str, current: Any, genuine: Any) -> bool:
    """True when *current*, found under *name*, is not the library's own function."""
    if genuine is not None:
        return current is not genuine
    if name.endswith("scaled_dot_product_attention"):
        return not _is_builtin_sdpa(current)
    if name.endswith("multi_head_attention_forward"):
        return not _defined_in(current, "torch/nn/functional.py")
    if name.startswith("transformers"):
        return not _defined_in(current, "transformers/integrations/sdpa_attention.py")
    return False


def patched_attention() -> list[str]:
    """The names of the attention functions this process has replaced (empty in an ordinary process)."""
    found = [name for name, get, _set, genuine in _slots() if _is_patched(name, get(), genuine)]
    if not _is_builtin_sdpa(_GENUINE_SDPA):
        found.append("torch._C._nn.scaled_dot_product_attention")
    return found


def _enter() -> None:
    global _depth
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        unknown = []
        for name, get, set_, genuine in _slots():
            current = get()
            if genuine is None:
                if _is_patched(name, current, genuine):
                    unknown.append(name)
            elif current is not genuine:
                set_(genuine)
                _swaps.append((get, set_, current, genuine))
        if not _is_builtin_sdpa(_GENUINE_SDPA):
            unknown.append("torch._C._nn.scaled_dot_product_attention")
    _warn(unknown)


def _exit() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth > 0:
            return
        while _swaps:
            get, set_, theirs, genuine = _swaps.pop()
            if get() is genuine:  # not re-patched by another thread meanwhile
                set_(theirs)


def _warn(names: list[str]) -> None:
    fresh = [n for n in dict.fromkeys(names) if n not in _warned]
    if not fresh:
        return
    _warned.update(fresh)
    warnings.warn(
        f"{', '.join(fresh)} {'is' if len(fresh) == 1 else 'are'} patched in this process (SageAttention or a "
        f"similar fast kernel) and clipgauge cannot find torch's or transformers' own function to use instead: "
        f"CLIP embeddings may differ from an unpatched process. Import clipgauge before applying the patch, or "
        f"disable the patch while scoring.", PatchedAttentionWarning, stacklevel=4)


@contextmanager
def genuine_attention() -> Iterator[None]:
    """Run the body with the genuine attention functions, then restore the process's own (see the module doc)."""
    _enter()
    try:
        yield
    finally:
        _exit()


def with_genuine_attention(method: F) -> F:
    """Wrap an encoder's forward method in :func:`genuine_attention` (idempotent)."""
    if getattr(method, "__clipgauge_genuine_attention__", False):
        return method

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with genuine_attention():
            return method(*args, **kwargs)

    wrapper.__clipgauge_genuine_attention__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]

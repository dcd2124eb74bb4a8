"""What each model of a run cost, measured while it ran: load time, embedding time, memory.

The scoring plan records, per model spec:

* ``load_s``: seconds to build the model (read weights, move to the device), wall clock;
* ``image_s`` / ``images``: seconds inside the model's image embedding (its own preprocessing — resize, crop,
  normalise — and forward pass; decoding the file is shared by every model and not counted) and the images it
  embedded; ``images_per_s`` is their ratio;
* ``text_s`` / ``texts``: the same for prompts (each distinct prompt once);
* ``weights_bytes``: bytes of the model's parameters and buffers (exact, from the tensors);
* ``peak_bytes``: on CUDA, the memory its load added (``torch.cuda.memory_allocated`` after − before: its
  weights) plus the most ``torch.cuda.max_memory_allocated`` rose above the allocation at the start of any of its
  embedding calls (its largest batch); on CPU, the growth of the
  process's resident memory (RSS, from ``/proc/self/statm``) over the load — an upper bound of its weights'
  host memory, None where ``/proc`` is missing. ``memory_kind`` says which.

A Ray run times only the driver's process (its actors keep their own numbers): use the local engine to
compare speeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


def resident_bytes() -> int | None:
    """The process's resident memory in bytes (Linux ``/proc/self/statm``), None where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _cuda(device: Any) -> Any:
    """``torch.cuda`` when *device* is a CUDA device, else None."""
    if device is None or getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return None
    import torch

    return torch.cuda


def _allocated() -> int:
    """CUDA memory allocated now (0 without torch or CUDA), before a model is built."""
    import sys

    torch = sys.modules.get("torch")
    return int(torch.cuda.memory_allocated()) if torch is not None and torch.cuda.is_available() else 0


@dataclass
class ModelTiming:
    """The measured cost of one model in one process (see the module docstring for each field)."""

    spec: str
    load_s: float = 0.0
    image_s: float = 0.0
    images: int = 0
    text_s: float = 0.0
    texts: int = 0
    weights_bytes: int | None = None
    peak_bytes: int | None = None
    memory_kind: str = "none"
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "device": self.device, "load_s": self.load_s, "image_s": self.image_s,
                "images": self.images, "images_per_s": self.images / self.image_s if self.image_s > 0 else None,
                "text_s": self.text_s, "texts": self.texts,
                "texts_per_s": self.texts / self.text_s if self.text_s > 0 else None,
                "weights_bytes": self.weights_bytes, "peak_bytes": self.peak_bytes, "memory_kind": self.memory_kind}


class ModelTimings:
    """Per-model timings of a :class:`~clipgauge.pipeline.plan.ScoringPlan` (filled in as the run goes)."""

    def __init__(self) -> None:
        self.models: dict[str, ModelTiming] = {}

    def get(self, spec: str) -> ModelTiming:
        return self.models.setdefault(spec, ModelTiming(spec))

    def load(self, spec: str, build: Any) -> Any:
        """Call ``build()`` (which returns a loaded :class:`~clipgauge.Scorer`) and record its cost."""
        rss0 = resident_bytes()
        cuda_before = _allocated()
        t0 = time.perf_counter()
        scorer = build()
        t = self.get(spec)
        t.load_s = time.perf_counter() - t0
        t.device = str(getattr(scorer, "device", ""))
        module = getattr(getattr(scorer, "encoder", None), "module", None)
        if module is not None:
            tensors = [*module.parameters(), *module.buffers()]
            t.weights_bytes = int(sum(x.numel() * x.element_size() for x in tensors))
        cuda = _cuda(getattr(scorer, "device", None))
        if cuda is not None:
            t.memory_kind = "cuda max_memory_allocated (weights + largest batch)"
            t.peak_bytes = max(0, int(cuda.memory_allocated()) - cuda_before)  # its weights on the device
        else:
            rss1 = resident_bytes()
            if rss0 is not None and rss1 is not None:
                t.memory_kind = "RSS growth over the load (CPU)"
                t.peak_bytes = max(0, rss1 - rss0)
        return scorer

    @contextmanager
    def embedding(self, spec: str, kind: str, count: int, device: Any = None) -> Iterator[None]:
        """Time one embedding call of *count* images (``kind="image"``) or texts of model *spec*."""
        cuda = _cuda(device)
        t = self.get(spec)
        if cuda is not None:
            base = cuda.memory_allocated()
            cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            if kind == "image":
                t.image_s += dt
                t.images += count
            else:
                t.text_s += dt
                t.texts += count
            if cuda is not None:
                extra = cuda.max_memory_allocated() - base
                t.peak_bytes = max(t.peak_bytes or 0, (t.weights_bytes or 0) + int(extra))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {spec: t.to_dict() for spec, t in self.models.items()}

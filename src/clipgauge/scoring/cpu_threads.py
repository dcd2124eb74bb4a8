"""How many torch threads a CPU forward pass uses while decode workers share the same cores.

On a CPU the decode threads and the model's intra-op threads compete for the cores. When decoding is the
bottleneck (a small model, or few cores), every core the forward pass takes is a core a decoder waits for, and an
intra-op thread that loses its core stalls the others at each barrier: measured on 2 busy cores, the test CLIP's
forward took 8 ms per image on 2 threads and 0.22 ms on 1. When the model is the bottleneck, it should have every
core. :class:`ForwardThreads` tells them apart from what the scoring loop already sees: if the model waited for
decoded images since its previous pass for more than a quarter of that pass's time, it is decode-bound and the
next pass runs on one thread; otherwise on torch's usual number. Thread counts never change a value here (the
forward is computed the same way on any number of threads; tests check scores against worker counts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: the model is decode-bound when it waited more than this fraction of its previous pass's time
DECODE_BOUND_WAIT = 0.25


class Waits:
    """Seconds the consumer of decoded images spent blocked on images not ready yet (see ``ordered``)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


class ForwardThreads:
    """Per forward pass on a CPU: one torch thread when decode-bound, torch's own number otherwise."""

    def __init__(self, waits: Waits) -> None:
        self.waits = waits
        self._seen = 0.0
        self._last_pass: float | None = None
        self.single_passes = 0  #: passes run on one thread (for tests and benchmarks)

    def decode_bound(self) -> bool:
        """Whether the model waited for images since the previous pass (for > DECODE_BOUND_WAIT of it)."""
        waited, self._seen = self.waits.seconds - self._seen, self.waits.seconds
        return self._last_pass is not None and waited > DECODE_BOUND_WAIT * self._last_pass

    @contextmanager
    def forward(self, device: torch.device) -> Iterator[None]:
        """Run the body (one forward pass on *device*) with the thread count chosen for it."""
        single = device.type == "cpu" and self.decode_bound()
        before = torch.get_num_threads()
        if single and before > 1:
            torch.set_num_threads(1)
        self.single_passes += single
        start = time.perf_counter()
        try:
            yield
        finally:
            self._last_pass = time.perf_counter() - start
            if single and before > 1:
                torch.set_num_threads(before)

"""How many torch threads a CPU forward pass uses while decode workers share the same cores.

On a CPU the decode threads and the model's intra-op threads compete for the cores. When decoding is the
bottleneck (a small model, or few cores), every core the forward pass takes is a core a decoder waits for, and an
intra-op thread that loses its core stalls the others at each barrier: measured on 2 busy cores, the test CLIP's
forward took 8 ms per image on 2 threads and 0.22 ms on 1. When the model is the bottleneck, it should have every
core. Which case a run is in cannot be read from who waits for whom (a forward slowed down by its own threads'
contention looks model-bound), so :class:`ForwardThreads` measures it: in every period of :data:`PERIOD` batches
it runs :data:`PROBE` batches on torch's usual threads and :data:`PROBE` on one, timing each batch's whole cycle
(from its forward pass to the next one's: the pass, the wait for decoded images, the bookkeeping), and runs the
rest of the period with whichever cycled faster. Where the decode threads had finished every image handed to
them by the end of a pass on all threads, the model is the limit and the one-thread probe is skipped. Thread
counts never change a value here (the forward is computed the same way on any number of threads; tests check
scores against worker counts). torch's thread count is global to the process, so it is only changed inside a
scoring run (:func:`adaptive_threads`), never while scores are tracked inside a training loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: batches per period, and batches timed with each thread count at the start of every period
PERIOD = 64
PROBE = 2

# torch's thread count is global to the process: it is only changed while clipgauge owns the process's compute (a
# scoring run: ``clipgauge.score``, a Ray actor), never in a training loop that tracks scores (``track``, the
# integrations) or for a Scorer used directly, where other torch code may run on other threads.
_owner_lock = threading.Lock()
_owners = 0


@contextmanager
def adaptive_threads() -> Iterator[None]:
    """Within this block, CPU forward passes may run on one torch thread when that is faster (see module doc)."""
    global _owners
    with _owner_lock:
        _owners += 1
    try:
        yield
    finally:
        with _owner_lock:
            _owners -= 1


def adaptive_threads_on() -> None:
    """Allow the adaptive thread count for the rest of this process (a Ray actor: clipgauge owns it)."""
    global _owners
    with _owner_lock:
        _owners += 1


class Waits:
    """What ``ordered`` saw of its decode threads: the seconds its consumer spent blocked on images not ready yet,
    and the images handed to the threads and not finished yet (``outstanding``)."""

    __slots__ = ("seconds", "outstanding", "lock")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.outstanding = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.outstanding += n


class ForwardThreads:
    """Per CPU forward pass: torch's own thread count or one, whichever makes the scoring loop faster."""

    def __init__(self, waits: Waits) -> None:
        self.waits = waits  #: the loop's time blocked on decoding (for the record)
        self._batch = 0
        self._last: tuple[float, bool] | None = None  # (start of the previous pass, whether on one thread)
        self._cycles: dict[bool, list[float]] = {True: [], False: []}
        self.single_passes = 0  #: passes run on one thread (for tests and benchmarks)
        self._idle = False  # whether every handed-over image was decoded by the end of the last pass on all threads

    def single(self) -> bool:
        """Whether the next pass runs on one thread (probing at the start of each period, then the faster)."""
        k = self._batch % PERIOD
        if k == 0:
            self._cycles = {True: [], False: []}
        if k < PROBE:
            return False
        if k < 2 * PROBE:
            return not self._idle  # decoders idle by the end of a pass on all threads: model-bound, no probe
        one, full = self._cycles[True], self._cycles[False]
        return bool(one and full and sum(one) / len(one) < sum(full) / len(full))

    @contextmanager
    def forward(self, device: torch.device) -> Iterator[None]:
        """Run the body (one forward pass on *device*) with the thread count chosen for it."""
        threads = torch.get_num_threads()
        if device.type != "cpu" or threads == 1 or not _owners:
            yield
            return
        now = time.perf_counter()
        if self._last is not None and self._batch > 1 and self._batch % PERIOD:  # cycles of this period (not the first)
            self._cycles[self._last[1]].append(now - self._last[0])
        single = self.single()
        self._batch += 1
        self._last = (now, single)
        if single:
            torch.set_num_threads(1)
            self.single_passes += 1
        try:
            yield
        finally:
            if single:
                torch.set_num_threads(threads)
            else:
                self._idle = self.waits.outstanding == 0

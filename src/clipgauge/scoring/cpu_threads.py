"""How many torch threads a CPU forward pass uses while decode workers share the same cores.

On a CPU the decode threads and the model's intra-op threads compete for the cores. When decoding is the
bottleneck (a small model, or few cores), every core the forward pass takes is a core a decoder waits for, and an
intra-op thread that loses its core stalls the others at each barrier: measured on 2 busy cores, the test CLIP's
forward took 3-10 ms per image on 2 threads and 0.3 ms on 1. When the model is the bottleneck, it should have every
core. Which case a run is in cannot be read from who waits for whom: a forward slowed down by its own threads'
contention is so slow that the decoders finish their look-ahead and idle, which looks model-bound. So
:class:`ForwardThreads` measures it. At each probe it runs :data:`PROBE` batches on torch's usual threads, timing
the calling thread's CPU time against the wall time of each pass: a thread that kept its core (at least
:data:`CONTENDED` of the wall time on CPU) was not fighting the decoders, and those threads are kept without
trying one. Otherwise it runs :data:`PROBE` batches on one thread and keeps whichever cycled faster (a batch's whole
cycle, from its forward pass to the next one's: the pass, the wait for decoded images, the bookkeeping). Probes
come :data:`PERIOD` batches apart, twice as far apart each time the same choice wins again (at most
:data:`MAX_PERIOD`), so a long run pays for them almost nothing. Thread counts never change a value here (the forward
is computed the same way on any number of threads; tests check scores against worker counts). torch's thread count
is global to the process, so it is only changed inside a scoring run (:func:`adaptive_threads`), never while scores
are tracked inside a training loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: batches between probes at first and at most, and batches timed with each thread count at a probe
PERIOD = 64
MAX_PERIOD = 1024
PROBE = 2
#: a pass whose calling thread was on a CPU for less than this fraction of its wall time was contended
CONTENDED = 0.8

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
    """The seconds ``ordered``'s consumer spent blocked on decoded images not ready yet (for the record)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


class ForwardThreads:
    """Per CPU forward pass: torch's own thread count or one, whichever makes the scoring loop faster."""

    def __init__(self, waits: Waits) -> None:
        self.waits = waits  #: the loop's time blocked on decoding (for the record)
        self._phase, self._left = "run", 0  # "full" / "one" (probing on all threads / one), "run"; passes left in it
        self._period = PERIOD  # passes of the current run phase
        self._choice: bool | None = None  # the last probe's winner (True: one thread)
        self._last: tuple[float, str, bool] | None = None  # the previous pass: (its start, its phase, on one thread)
        self._passes = 0
        self._cycles: dict[bool, list[float]] = {True: [], False: []}
        self._kept = [0.0, 0.0]  # calling-thread CPU seconds and wall seconds of this probe's passes on all threads
        self.single_passes = 0  #: passes run on one thread (for tests and benchmarks)

    def _settle(self) -> None:
        one, full = self._cycles[True], self._cycles[False]
        single = bool(one and full and sum(one) / len(one) < sum(full) / len(full))
        self._period = min(2 * self._period, MAX_PERIOD) if single == self._choice else PERIOD
        self._choice = single
        self._phase, self._left = "run", self._period

    def single(self) -> bool:
        """Whether the next pass runs on one thread (probing, then the faster; see the module doc)."""
        if self._phase == "run" and self._left <= 0:
            self._phase, self._left = "full", PROBE
            self._cycles, self._kept = {True: [], False: []}, [0.0, 0.0]
        if self._phase == "full" and self._left <= 0:
            cpu, wall = self._kept
            if cpu < CONTENDED * wall:  # the passes on all threads lost their core to other threads: try one
                self._phase, self._left = "one", PROBE
            else:
                self._settle()
        if self._phase == "one" and self._left <= 0:
            self._settle()
        self._left -= 1
        return self._phase == "one" or (self._phase == "run" and bool(self._choice))

    @contextmanager
    def forward(self, device: torch.device) -> Iterator[None]:
        """Run the body (one forward pass on *device*) with the thread count chosen for it."""
        threads = torch.get_num_threads()
        if device.type != "cpu" or threads == 1 or not _owners:
            yield
            return
        now = time.perf_counter()
        first = self._passes == 0  # (the run's first pass also warms the model up: not timed)
        if self._passes > 1 and self._last is not None and self._last[1] != "run":  # the previous pass, a probe
            self._cycles[self._last[2]].append(now - self._last[0])
        single = self.single()
        self._passes += 1
        self._last = (now, self._phase, single)
        if single:
            torch.set_num_threads(1)
            self.single_passes += 1
        cpu = time.thread_time()
        try:
            yield
        finally:
            if single:
                torch.set_num_threads(threads)
            elif self._phase == "full" and not first:
                self._kept[0] += time.thread_time() - cpu
                self._kept[1] += time.perf_counter() - now

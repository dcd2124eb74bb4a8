"""How many torch threads a CPU forward pass uses while decode workers share the same cores.

On a CPU the decode threads and the model's intra-op threads compete for the cores. When decoding is the
bottleneck (a small model, or few cores), every core the forward pass takes is a core a decoder waits for, and an
intra-op thread that loses its core stalls the others at each barrier: measured on 2 busy cores, the test CLIP's
forward took 3-10 ms per image on 2 threads and 0.3 ms on 1. When the model is the bottleneck, it should have every
core. :class:`ForwardThreads` tells the two apart by measuring. At each probe it runs :data:`PROBE` batches on
torch's usual threads, timing each batch's whole cycle (from its forward pass to the next one's: the pass, the wait
for decoded images, the bookkeeping). If the loop hardly waited for decoded images in those cycles (at most
:data:`WAITING` of them), the model is the limit and those threads are kept. Otherwise it runs :data:`PROBE`
batches on one thread and keeps whichever cycled faster. (Whether the decoders had finished their look-ahead by the
end of a pass is no signal: a forward slowed down by its threads' contention lets them finish and idle.)

A loop may wait for no decoded image at all and still be decode-bound: a forward pass slowed down by contention
lets the decoders finish their look-ahead (measured on 2 cores with the test CLIP and ``--fast-decode``: 58 ms a
batch on two threads, 36 ms on one, under 1 % of the cycles waiting). So the decoders' own busy time is watched
too: when they worked more than :data:`DECODE_BUSY` of each of the latest cycles (in seconds of one core; a
model-bound run with ViT-B/32 shapes: about 5 %), one thread is tried after 2 such passes, then after 4, 8, …
while all threads keep winning. Probes come
:data:`PERIOD` batches apart, twice as far apart each time the same choice wins again (at most
:data:`MAX_PERIOD`), so a long run pays for them almost nothing. The chosen count stays set between passes, so the
bookkeeping between them does not wake torch's idle intra-op threads either: after each parallel region they
spin-wait on a core for a while, which took a third of the CPU time of a decode-bound run. Thread counts never
change a value here (the forward is computed the same way on any number of threads; tests check scores against
worker counts). torch's thread count is global to the process, so it is only changed inside a scoring run
(:func:`adaptive_threads`), never while scores are tracked inside a training loop.
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
#: one thread is tried at once when the loop waited for decoded images for more than this fraction of its latest
#: cycles on all threads (otherwise only after a period)
WAITING = 0.05
#: one thread is tried early when the decode threads were busy for more than this fraction
#: of the latest cycles on all threads (seconds of work summed over the threads, over the cycles' wall time)
DECODE_BUSY = 0.5

# torch's thread count is global to the process: it is only changed while clipgauge owns the process's compute (a
# scoring run: ``clipgauge.score``, a Ray actor), never in a training loop that tracks scores (``track``, the
# integrations) or for a Scorer used directly, where other torch code may run on other threads.
_owner_lock = threading.Lock()
_owners = 0
_full_threads = 0  # torch's thread count when the process's compute was handed to clipgauge


def _own() -> None:
    global _owners, _full_threads
    with _owner_lock:
        if _owners == 0:
            _full_threads = torch.get_num_threads()
        _owners += 1


@contextmanager
def adaptive_threads() -> Iterator[None]:
    """Within this block, CPU forward passes may run on one torch thread when that is faster (see module doc).
    torch's thread count is restored when the block ends."""
    global _owners
    _own()
    try:
        yield
    finally:
        with _owner_lock:
            _owners -= 1
            if _owners == 0 and torch.get_num_threads() != _full_threads:
                torch.set_num_threads(_full_threads)


def adaptive_threads_on() -> None:
    """Allow the adaptive thread count for the rest of this process (a Ray actor: clipgauge owns it)."""
    _own()


class Waits:
    """The seconds ``ordered``'s consumer spent blocked on decoded images not ready yet, and the seconds its decode
    threads spent working (summed over the threads): :class:`ForwardThreads` reads both to tell a decode-bound
    loop."""

    __slots__ = ("seconds", "busy")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.busy = 0.0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("inf")


class ForwardThreads:
    """Per CPU forward pass: torch's own thread count or one, whichever makes the scoring loop faster."""

    def __init__(self, waits: Waits) -> None:
        self.waits = waits  #: the loop's time blocked on decoded images
        # "all" / "one": running on all threads / one; "try-one" / "try-all": probing the other count
        self._phase = "all"
        self._left = PERIOD  # passes of this phase before the other count is tried (for a probe: passes left)
        self._period = PERIOD
        self._busy_gap = PROBE  # passes on all threads with busy decoders before one thread is tried (doubles)
        self._last: tuple[float, float, float, bool] | None = None  # previous pass: start, waits, busy, one thread
        self._passes = 0
        self._cycles: dict[bool, list[float]] = {True: [], False: []}  # the latest cycles on one thread / all
        self._waits: list[float] = []  # the loop's waits for images in the latest cycles on all threads
        self._busy: list[float] = []  # the decode threads' work in the latest cycles on all threads
        self.single_passes = 0  #: passes run on one thread (for tests and benchmarks)

    def _switch(self, phase: str, left: int) -> None:
        self._phase, self._left = phase, left
        if phase.startswith("try"):
            self._cycles[phase == "try-one"] = []

    def _decide(self) -> None:
        """After a probe: keep the count whose latest cycles were faster."""
        one_wins = _mean(self._cycles[True][-PROBE:]) < _mean(self._cycles[False][-PROBE:])
        confirmed = one_wins == (self._phase == "try-all")  # the count run before the probe won again
        self._period = min(2 * self._period, MAX_PERIOD) if confirmed else PERIOD
        self._waits = []
        self._switch("one" if one_wins else "all", self._period)

    def single(self) -> bool:
        """Whether the next pass runs on one thread (see the module doc)."""
        if self._phase == "all":
            cycles, waits = self._cycles[False][-PROBE:], self._waits[-PROBE:]
            waiting = len(cycles) == PROBE and sum(waits) > WAITING * sum(cycles)
            busy = (len(cycles) == PROBE and len(self._busy) >= PROBE
                    and all(b > DECODE_BUSY * c for b, c in zip(self._busy[-PROBE:], cycles)))
            early = busy and not waiting and self._left > 0 and self._period - self._left >= self._busy_gap
            if early:  # busy decoders: look soon, then ever less often while all threads keep winning
                self._busy_gap = min(2 * self._busy_gap, MAX_PERIOD)
            if waiting or early or self._left <= 0:  # decoding held the loop up, or it is time to look again
                self._switch("try-one", PROBE)
        elif self._phase == "one" and self._left <= 0:
            self._switch("try-all", PROBE)
        elif self._phase.startswith("try") and self._left <= 0:
            self._decide()
        self._left -= 1
        return self._phase in ("one", "try-one")

    @contextmanager
    def forward(self, device: torch.device) -> Iterator[None]:
        """Run the body (one forward pass on *device*) with the thread count chosen for it. The count stays set
        until the next pass (or the end of the scoring run): the bookkeeping between passes runs on it too, so
        torch's idle intra-op threads are not woken up (they spin-wait on a core after each parallel region, which
        the decode threads need)."""
        threads = _full_threads
        if device.type != "cpu" or threads <= 1 or not _owners:
            yield
            return
        now, waited, busy = time.perf_counter(), self.waits.seconds, self.waits.busy
        if self._passes > 1 and self._last is not None:  # the previous pass's cycle (the first one warms up: untimed)
            start, waits_then, busy_then, one = self._last
            self._cycles[one] = self._cycles[one][-PROBE:] + [now - start]
            if not one:
                self._waits = self._waits[-PROBE:] + [waited - waits_then]
                self._busy = self._busy[-PROBE:] + [busy - busy_then]
        single = self.single()
        self._passes += 1
        self._last = (now, waited, busy, single)
        if torch.get_num_threads() != (1 if single else threads):
            torch.set_num_threads(1 if single else threads)
        self.single_passes += single
        yield

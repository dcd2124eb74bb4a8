"""The image loop's bookkeeping: ``ordered`` keeps input order with grouped hand-overs, skipped rows and prefetched
jobs, and counts the time spent waiting; ``ForwardThreads`` runs CPU forward passes on one thread or torch's own count,
whichever it measured to cycle faster, and never changes a score."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest
import torch
from conftest import PROMPTS, jpeg_files

from clipgauge import Scorer
from clipgauge.scoring.cpu_threads import ForwardThreads, Waits, adaptive_threads
from clipgauge.scoring.pipeline import Item, Skip, ordered


def _job(src):
    return Item(key=str(src))


@pytest.mark.parametrize("group", [1, 3, 8, 50])
@pytest.mark.parametrize("window", [1, 4, 64])
def test_ordered_keeps_input_order_with_skips_and_prefetched_jobs(group, window):
    sources = [Skip("bad") if i % 7 == 3 else i for i in range(103)]
    prefetched = {}
    for i in (0, 1, 2, 40):
        fut = Future()
        fut.set_result(Item(key=f"pre{i}"))
        prefetched[i] = fut
    got = list(ordered(sources, _job, workers=2, window=window, group=group,
                       ready=lambda i, src: prefetched.get(i)))
    assert [i for i, _ in got] == list(range(103))
    for i, item in got:
        if i in prefetched:
            assert item.key == f"pre{i}"
        elif i % 7 == 3:
            assert item.skip == "bad" and item.key is None
        else:
            assert item.key == str(i)


def test_ordered_never_runs_more_than_the_window_ahead():
    started = []
    lock = threading.Lock()

    def job(src):
        with lock:
            started.append(src)
        return Item(key=str(src))

    seen = 0
    for i, _ in ordered(range(200), job, workers=2, window=10, group=4):
        time.sleep(0.001)
        with lock:
            assert len(started) <= i + 10 + 1
        seen += 1
    assert seen == 200


def test_waits_count_the_time_blocked_on_slow_jobs():
    waits = Waits()

    def slow(src):
        time.sleep(0.02)
        return Item(key=str(src))

    list(ordered(range(10), slow, workers=1, window=4, group=1, waits=waits))
    assert waits.seconds >= 0.1  # 10 jobs of 20 ms on one thread, consumed at once: most of it waited for
    fast = Waits()
    list(ordered(range(10), _job, workers=1, window=4, waits=fast))
    assert fast.seconds < waits.seconds


def _passes(monkeypatch, n, cycle, waiting, busy=0.0):
    """Run *n* CPU forward passes in a scoring run on a mocked clock; *cycle(one)* is a pass's whole cycle in seconds
    on one thread or all, *waiting* the part of a cycle on all threads spent waiting for decoded images, and *busy*
    the decode threads' work in it (seconds of one core over the cycle).
    Returns, per pass, whether it ran on one thread, and whether the count stayed set after it."""
    import clipgauge.scoring.cpu_threads as ct

    clock = [0.0]
    monkeypatch.setattr(ct.time, "perf_counter", lambda: clock[0])
    threads = ForwardThreads(Waits())
    used, between = [], []
    with ct.adaptive_threads():  # inside a scoring run
        for _ in range(n):
            with threads.forward(torch.device("cpu")):
                one = torch.get_num_threads() == 1
                used.append(one)
            between.append(torch.get_num_threads() == 1)
            clock[0] += cycle(one)
            threads.waits.seconds += 0.0 if one else waiting * cycle(one)
            threads.waits.busy += 0.0 if one else busy * cycle(one)
    assert torch.get_num_threads() == 2  # restored when the scoring run ends
    assert between == used  # the count stays set until the next pass (no idle intra-op thread woken between them)
    assert threads.single_passes == sum(used)
    return used


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_decode_bound_loop_moves_to_one_thread_and_checks_back_ever_less_often(monkeypatch, two_threads):
    import clipgauge.scoring.cpu_threads as ct

    # all threads: 3 s a cycle, a third of it waiting for images (the decoders lost their cores); one thread: 1 s
    used = _passes(monkeypatch, 2 + ct.PROBE + 4 * ct.PERIOD, lambda one: 1.0 if one else 3.0, 1 / 3)
    start = 1 + ct.PROBE  # the first pass warms up (untimed), then PROBE cycles on all threads show the waiting
    assert used[:start] == [False] * start and all(used[start : start + ct.PROBE])
    tried = used.index(False, start)  # after PERIOD passes on one thread, PROBE on all threads ...
    assert tried == start + ct.PROBE + ct.PERIOD and used[tried : tried + ct.PROBE] == [False] * ct.PROBE
    again = used.index(False, tried + ct.PROBE)  # ... then twice as far apart, as one thread kept winning
    assert again == tried + ct.PROBE + 2 * ct.PERIOD


def test_a_model_bound_loop_keeps_all_threads(monkeypatch, two_threads):
    import clipgauge.scoring.cpu_threads as ct

    # the loop never waits for images and the decoders work 5 % of each cycle; one thread would be slower: tried
    # once after PERIOD passes, then 2 x PERIOD later
    used = _passes(monkeypatch, 4 * ct.PERIOD, lambda one: 1.7 if one else 1.0, 0.0, busy=0.05)
    first = used.index(True)
    assert first == ct.PERIOD and used[first : first + ct.PROBE] == [True] * ct.PROBE
    second = used.index(True, first + ct.PROBE)
    assert second == first + ct.PROBE + 2 * ct.PERIOD
    assert sum(used) == 2 * ct.PROBE


def test_a_loop_that_never_waits_still_moves_to_one_thread_when_that_is_faster(monkeypatch, two_threads):
    import clipgauge.scoring.cpu_threads as ct

    # decode-bound, but the slow forward on all threads (contention) lets the decoders keep ahead: no waiting at all
    # shows, while the decoders work 90 % of each cycle. One thread is faster: tried at once, and kept
    used = _passes(monkeypatch, 2 * ct.PERIOD, lambda one: 36.0 if one else 58.0, 0.0, busy=0.9)
    start = 1 + ct.PROBE  # the first pass warms up (untimed), then PROBE cycles on all threads show the busy decoders
    assert used.index(True) == start
    assert all(used[start : start + ct.PERIOD])


def test_forward_threads_change_only_cpu_passes_inside_a_scoring_run(two_threads):
    import clipgauge.scoring.cpu_threads as ct

    threads = ForwardThreads(Waits())
    threads._phase = "one"  # as if one thread had won
    threads._left = 10**6
    with ct.adaptive_threads(), threads.forward(torch.device("meta")):  # only CPU passes are changed
        assert torch.get_num_threads() == 2
    for _ in range(3):  # outside a scoring run (a training loop's tracker): never changed
        with threads.forward(torch.device("cpu")):
            assert torch.get_num_threads() == 2
    with ct.adaptive_threads(), threads.forward(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_decode_bound_scoring_gives_the_same_scores(hf_model_dir, tmp_path, monkeypatch):
    paths = jpeg_files(tmp_path, 12, size=(300, 200))
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(12)]
    normal = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=4).score(paths, prompts)
    monkeypatch.setattr(ForwardThreads, "single", lambda self: True)
    single = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # (one thread already on a one-core machine)
    try:
        with adaptive_threads():
            got = single.score(paths, prompts)
    finally:
        torch.set_num_threads(before)
    assert single._threads.single_passes == 3
    np.testing.assert_allclose(got, normal, atol=1e-6, rtol=0)

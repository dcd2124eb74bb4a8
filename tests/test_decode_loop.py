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
from conftest import PROMPTS, jpeg_bytes, random_rgb

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


@pytest.mark.parametrize("single_is_faster", [True, False])
def test_forward_threads_probe_both_counts_and_keep_the_faster(monkeypatch, single_is_faster):
    import clipgauge.scoring.cpu_threads as ct

    clock = [0.0]
    monkeypatch.setattr(ct.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(ct.time, "thread_time", lambda: clock[0] / 2)  # the passes lose half their core: contended
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = ForwardThreads(Waits())
        used = []
        with ct.adaptive_threads():  # inside a scoring run
            for _ in range(1 + 4 * ct.PERIOD):
                with threads.forward(torch.device("cpu")):
                    one = torch.get_num_threads() == 1
                    used.append(one)
                    clock[0] += 0.5 if one == single_is_faster else 1.5  # the forward pass ...
                clock[0] += 0.5  # ... and the rest of its cycle
        assert torch.get_num_threads() == 2  # restored
        probe = [False] * ct.PROBE + [True] * ct.PROBE
        run = 2 * ct.PROBE + ct.PERIOD
        assert used[: 2 * ct.PROBE] == probe
        assert set(used[2 * ct.PROBE : run]) == {single_is_faster}
        assert used[run : run + 2 * ct.PROBE] == probe  # probed again after PERIOD passes ...
        again = run + 2 * ct.PROBE
        assert set(used[again : again + 2 * ct.PERIOD]) == {single_is_faster}  # ... then twice as far apart
        assert used[again + 2 * ct.PERIOD : again + 2 * ct.PERIOD + 2 * ct.PROBE] == probe
        assert threads.single_passes == sum(used)
        with ct.adaptive_threads(), threads.forward(torch.device("meta")):  # only CPU passes are changed
            assert torch.get_num_threads() == 2
        for _ in range(2 * ct.PERIOD):  # outside a scoring run (a training loop's tracker): never changed
            with threads.forward(torch.device("cpu")):
                assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_no_one_thread_probe_while_the_forward_keeps_its_cores(monkeypatch):
    import clipgauge.scoring.cpu_threads as ct

    clock = [0.0]
    monkeypatch.setattr(ct.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(ct.time, "thread_time", lambda: clock[0])  # on a core the whole pass: model-bound
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = ForwardThreads(Waits())
        with ct.adaptive_threads():
            for _ in range(3 * ct.PERIOD):
                with threads.forward(torch.device("cpu")):
                    assert torch.get_num_threads() == 2
                    clock[0] += 1.0
        assert threads.single_passes == 0
    finally:
        torch.set_num_threads(before)


def test_decode_bound_scoring_gives_the_same_scores(hf_model_dir, tmp_path, monkeypatch):
    paths = []
    for i in range(12):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(jpeg_bytes(random_rgb(i, size=(300, 200))))
        paths.append(p)
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

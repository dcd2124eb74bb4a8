"""The image side of scoring before the model: decode and preprocess in worker threads, in input order.

* :func:`prepare_image` — one image: decode (``clipgauge.decode``) then the encoder's preprocessing, either
  whole (a float tensor) or its first stage (a uint8 crop, see ``Encoder.crop_plan``). Never raises: a
  failure becomes the row's reason.
* :func:`ordered` — a bounded look-ahead window of worker-thread jobs, yielded in input order, so memory
  stays flat however many images there are.
* :class:`Prefetch` — images decoded while the model is still loading (imports and weights take seconds
  on one core; the other cores would idle). It uses a plan read from the model's config file, and the
  scorer uses its work only when the loaded model's plan is the same.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..decode import load_image
from ..errors import RowError
from ..image_files import DEFAULT_MAX_IMAGE_BYTES, path_problem

#: Memory the start-up prefetch may fill with uint8 crops (≈ 330 images at 224 px, 145 at 336 px).
PREFETCH_BYTES = 48 << 20
PREFETCH_MAX_IMAGES = 1024


class Skip:
    """Placeholder for a row that cannot be scored, carrying the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str | None) -> None:
        self.reason = reason or "cannot be scored"


@dataclass
class Item:
    """One image on its way to the model: pixels to encode (float tensor or uint8 crop), a cached
    embedding, or the reason it is skipped."""

    pixels: torch.Tensor | np.ndarray | None = None
    embedding: np.ndarray | None = None
    key: str | None = None
    skip: str | None = None


def failed(exc: Exception) -> Item:
    """The item of a row whose image could not be read or preprocessed, with the reason."""
    if isinstance(exc, RowError):
        return Item(skip=exc.reason)
    return Item(skip=f"preprocessing failed: {type(exc).__name__}: {exc}")


def prepare_image(src: Any, preprocess: Callable[[Any], Any], *, max_pixels: int, draft: int | None,
                  max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> Item:
    """Decode *src* (at most *max_bytes* bytes of it) and apply *preprocess*; a failure becomes the item's ``skip``
    reason."""
    if isinstance(src, Skip):
        return Item(skip=src.reason)
    try:
        image = load_image(src, max_pixels=max_pixels, draft=draft, max_bytes=max_bytes)
        return Item(pixels=preprocess(image))
    except Exception as exc:  # noqa: BLE001 - a decode or preprocessing failure is that row's error
        return failed(exc)


def unreadable(src: Any) -> str | None:
    """Why the image source *src* cannot be read, found without opening it (a path: one ``stat``), in the words
    the decode threads would use: missing, or not a regular file (a folder, a pipe, a device, a socket:
    ``clipgauge.image_files``); None when it may be read (any other failure is left to the decode)."""
    if isinstance(src, Skip):
        return src.reason
    if isinstance(src, (str, os.PathLike)):
        return path_problem(src)
    return None


def absent_as_skips(sources: Iterable[Any], after: int = 0) -> Iterator[Any]:
    """Each source as given, except a file path that cannot be read (:func:`unreadable`): a :class:`Skip` with the
    reason, so it never reaches a thread. The first *after* sources are passed as given (the start-up prefetch may
    hold their pixels)."""
    for i, src in enumerate(sources):
        if i >= after and not isinstance(src, Skip):
            reason = unreadable(src)
            if reason is not None:
                src = Skip(reason)
        yield src


def ordered(
    sources: Iterable[Any], job: Callable[[Any], Item], *, workers: int, window: int,
    ready: Callable[[int, Any], Future | None] | None = None, waits: Any = None, group: int = 1,
) -> Iterator[tuple[int, Item]]:
    """Run *job* on every source in *workers* threads, at most *window* ahead, yielding ``(index, item)``
    in input order. *ready* may return an already-started job for a source (the prefetch).

    A :class:`Skip` needs no thread: its item is made here. Other sources go to the threads *group* at a time
    (one hand-over per group: rows that fail at once, like missing files, cost little more than their reason).
    *waits* (``cpu_threads.Waits``) adds up the seconds spent blocked on items not ready yet, and the threads' busy
    seconds.
    """
    # (first index, items made here | Future of one item (prefetch) | Future of a list of items)
    pending: deque[tuple[int, list[Item] | Future, bool]] = deque()
    queued = 0  # items in pending and in the group being filled
    group_srcs: list[Any] = []
    first = 0

    def many(srcs: list[Any]) -> list[Item]:
        if waits is None:
            return [job(s) for s in srcs]
        t = time.perf_counter()
        out = [job(s) for s in srcs]
        waits.busy += time.perf_counter() - t  # under the GIL; a lost update only delays a probe
        return out

    def submit() -> None:
        nonlocal group_srcs
        if group_srcs:
            pending.append((first, pool.submit(many, group_srcs), True))
            group_srcs = []

    def take() -> Iterator[tuple[int, Item]]:
        nonlocal queued
        start, got, is_list = pending.popleft()
        if isinstance(got, Future):
            if waits is not None and not got.done():
                t = time.perf_counter()
                got.result()
                waits.seconds += time.perf_counter() - t
            got = got.result() if is_list else [got.result()]
        queued -= len(got)
        for k, item in enumerate(got):
            yield start + k, item

    with ThreadPoolExecutor(workers, thread_name_prefix="clipgauge-decode") as pool:
        for i, src in enumerate(sources):
            started = ready(i, src) if ready is not None else None
            if started is not None or isinstance(src, Skip):
                submit()
                pending.append((i, started or [Item(skip=src.reason)], False))
            else:
                if not group_srcs:
                    first = i
                group_srcs.append(src)
                if len(group_srcs) >= group:
                    submit()
            queued += 1
            while queued >= window:
                submit()
                yield from take()
        submit()
        while pending:
            yield from take()


class Prefetch:
    """Decode and crop the first images of a run in background threads while the model loads.

    Only file paths are prefetched (their identity is their path), at most :data:`PREFETCH_MAX_IMAGES`
    and :data:`PREFETCH_BYTES` of crops. *plan* is a provisional ``crop_plan`` (from the model's config
    file); :meth:`take` hands the work over only to a scorer whose loaded plan equals it.
    """

    def __init__(self, sources: Sequence[Any], plan: Any, *, workers: int, max_pixels: int,
                 draft: int | None, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> None:
        self.plan, self.max_pixels, self.draft, self.max_bytes = plan, max_pixels, draft, max_bytes
        per_image = 3 * plan.crop_h * plan.crop_w
        n = min(len(sources), PREFETCH_MAX_IMAGES, max(1, PREFETCH_BYTES // per_image))
        self.jobs: list[tuple[str | None, Future | None]] = []
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="clipgauge-prefetch")
        for src in sources[:n]:
            if isinstance(src, (str, os.PathLike)):
                fut = pool.submit(prepare_image, src, plan.crop, max_pixels=max_pixels, draft=draft,
                                  max_bytes=max_bytes)
                self.jobs.append((os.fspath(src), fut))
            else:
                self.jobs.append((None, None))
        pool.shutdown(wait=False)  # queued jobs still run; the threads end when they are done

    def cancel(self) -> None:
        """Drop the jobs (those not started yet never run)."""
        jobs, self.jobs = self.jobs, []
        for _, fut in jobs:
            if fut is not None:
                fut.cancel()

    def take(self, plan: Any, max_pixels: int, draft: int | None, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
             ) -> Callable[[int, Any], Future | None] | None:
        """The prefetched jobs as an ``ordered(ready=...)`` look-up, if they were made the way the scorer
        would make them now; else None (and they are dropped)."""
        if (plan, max_pixels, draft, max_bytes) != (self.plan, self.max_pixels, self.draft, self.max_bytes):
            self.cancel()
            return None
        jobs, self.jobs = self.jobs, []
        by_path: dict[str, list[Future]] = {}  # by path, not position: the caller may leave rows out
        for path, fut in jobs:
            if path is not None:
                by_path.setdefault(path, []).append(fut)

        def ready(i: int, src: Any) -> Future | None:
            if by_path and isinstance(src, (str, os.PathLike)):
                key = os.fspath(src)
                futs = by_path.get(key)
                if futs:
                    fut = futs.pop(0)  # hand each over once, and free it once used
                    if not futs:
                        del by_path[key]
                    return fut
            return None

        return ready

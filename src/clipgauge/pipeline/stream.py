"""The image side of the scoring step as streams that run ahead across groups of rows.

Rows are scored in *groups* (consecutive rows, never across a part boundary the caller names), and each group's
results leave as soon as its last row is scored. Images, though, are decoded and embedded by streams that span the
whole run: the decode threads keep working on the next group's images while the model finishes this one, so
decoding overlaps the model across group and part boundaries, and memory stays bounded by the streams' look-ahead
windows.

* :func:`groups` — cut the rows into groups (at most *size* rows, a new group at every new part), each knowing
  whether it is the last of its part (one row of look-ahead).
* :func:`fill_images` — fill every group's own-image needs (embeddings per model, decoded pixels, any registered
  kind of the images phase) from the streams, yielding the groups in order, complete; the caller computes
  everything else per group.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..metrics.base import MetricBatch, Need
from ..metrics.needs import IMAGES, need_kind
from ..scoring.pipeline import Skip, ordered, prepare_image, unreadable
from ..sources.shards import SourceRow

Progress = Callable[[int], None]


@dataclass
class Group:
    """Consecutive rows scored together. ``closes``: no later row belongs to the same part. ``blocked``: per row,
    why its image need not be read (broken in the source, or a bad prompt), set before its images are streamed."""

    rows: list[SourceRow]
    closes: bool = True
    batch: MetricBatch | None = None
    blocked: list[str | None] = field(default_factory=list)
    #: set by :func:`fill_images`: per row the reason known before reading (None: blocked, or streamed), the
    #: positions of the rows whose images are streamed, and those images' sources
    reasons: list[str | None] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)


def groups(rows: Iterable[SourceRow], size: int, part: Callable[[SourceRow], Any] | None = None
           ) -> Iterator[Group]:
    """*rows* in groups of at most *size* consecutive rows; a group never holds rows of two parts
    (``part(row)``, e.g. the row's shard), and says whether the next row starts another part."""
    it = iter(rows)
    nxt = next(it, None)
    while nxt is not None:
        key = part(nxt) if part is not None else None
        rows_: list[SourceRow] = [nxt]
        nxt = next(it, None)
        while nxt is not None and len(rows_) < size and (part is None or part(nxt) == key):
            rows_.append(nxt)
            nxt = next(it, None)
        yield Group(rows_, closes=nxt is None or part is None or part(nxt) != key)


def image_needs(plan: Any) -> list[Need]:
    """The plan's needs of each row's own image (phase :data:`~clipgauge.metrics.needs.IMAGES`), those that read the
    image sources themselves (a model's embeddings) first."""
    found = [n for n in plan.needs if need_kind(n.kind).phase_of(n) == IMAGES]
    return sorted(found, key=lambda n: need_kind(n.kind).decoded)


def fill_images(plan: Any, prepared: Iterator[Group], progress: Progress | None = None) -> Iterator[Group]:
    """Fill ``batch.values`` / ``batch.errors`` of each group's own-image needs, yielding the groups in order.

    *prepared* yields groups with ``batch`` and ``blocked`` set. It is read ahead of the groups yielded here (by the
    streams' look-ahead), so it must compute only what a group needs before its images. Rows whose image cannot be
    read (blocked, no image, a file that is not there: :func:`unreadable`) never enter the streams. Each need's kind
    turns its stream into values (:meth:`~clipgauge.metrics.needs.NeedKind.stream`); with several needs, or one
    that reads pixels, each image is decoded once for all. *progress* is called with a count of rows every model
    batch (every group where the plan reads no image).
    """
    needs = image_needs(plan)
    if not needs:
        for group in prepared:
            if progress is not None:
                progress(len(group.rows))
            yield group
        return
    kinds = [need_kind(n.kind) for n in needs]
    screened = (_screened(g) for g in prepared)
    ahead: deque[Group] = deque()  # groups the feed read ahead of the loop below
    unfed: deque[Group] = deque()  # groups the loop read before the feed reached them

    def feed() -> Iterator[Any]:
        """Each group's sources in order, or one placeholder for a group without any: the decode window counts
        it, so a long run of rows without images is never read ahead of the loop (and never held)."""
        while (g := _next_group(unfed, screened, ahead)) is not None:
            yield from g.sources or (_NOTHING,)

    sources = feed()
    if plan.decode_once:  # each image decoded once, handed to every model and to the metrics that read pixels
        branches: tuple[Iterator[Any], ...] = itertools.tee(_decoded(plan, sources), len(needs))
    else:  # one model, which reads the sources itself
        branches = (sources,)
    streams = [kind.stream(plan, need, branch) for need, kind, branch in zip(needs, kinds, branches)]
    counter = _Counter(progress, plan.options.batch_size)
    while (group := _next_group(ahead, screened, unfed)) is not None:
        n, m = len(group.rows), len(group.sources)
        for k, (need, kind, stream) in enumerate(zip(needs, kinds, streams)):
            if not m:
                next(stream)  # the group's placeholder
                items: list[Any] = []
            else:
                with kind.timed(plan, need, m):  # the first model's stream reports progress per model batch
                    first = k == 0 and not kind.decoded
                    items = counter.take(stream, m) if first else list(itertools.islice(stream, m))
            errors = list(group.reasons)
            for i, (_, err) in zip(group.streamed, items):
                errors[i] = err
            group.batch.values[need] = kind.collect(plan, need, n, group.streamed, items)
            group.batch.errors[need] = errors
        counter.add(n - m)  # rows that needed no model work count at once
        yield group
    counter.add(0, last=True)


class _Counter:
    """Rows done, reported to *progress* in whole model batches of *step* rows (the rest at the end)."""

    def __init__(self, progress: Progress | None, step: int) -> None:
        self.progress, self.step, self.unreported = progress, step, 0

    def add(self, n: int, last: bool = False) -> None:
        if self.progress is None:
            return
        self.unreported += n
        whole = self.unreported if last else self.unreported - self.unreported % self.step
        if whole:
            self.progress(whole)
            self.unreported -= whole

    def take(self, stream: Iterator[Any], n: int) -> list[Any]:
        """The next *n* items of *stream*, reporting every *step* of them as they come."""
        if self.progress is None:
            return list(itertools.islice(stream, n))
        out = []
        for item in itertools.islice(stream, n):
            out.append(item)
            self.unreported += 1
            if self.unreported == self.step:
                self.progress(self.step)
                self.unreported = 0
        return out


#: the one source a group without images puts in the streams (:func:`fill_images`)
_NOTHING = Skip("no image")


def _next_group(mine: deque[Group], screened: Iterator[Group], theirs: deque[Group]) -> Group | None:
    """The next group for one of fill_images' two readers (the feed, the loop): the oldest the other read ahead
    (*mine*), else a new one from *screened*, left in *theirs* for the other; None at the end."""
    if mine:
        return mine.popleft()
    group = next(screened, None)
    if group is not None:
        theirs.append(group)
    return group


def _screened(group: Group) -> Group:
    """Split the group's rows into those whose image is streamed (``streamed``: their positions, ``sources``) and
    those whose reason is known without reading (``reasons``: None for a blocked row, whose error is its own)."""
    reasons: list[str | None] = [None] * len(group.rows)
    streamed, sources = [], []
    for i, (row, b) in enumerate(zip(group.rows, group.blocked)):
        if b:
            continue
        src = row.image
        reason = "missing image" if src is None else unreadable(src)
        if reason is None:
            streamed.append(i)
            sources.append(src)
        else:
            reasons[i] = reason
    group.reasons, group.streamed, group.sources = reasons, streamed, sources
    return group


def _decoded(plan: Any, sources: Iterable[Any]) -> Iterator[Any]:
    """Each source decoded (``clipgauge.decode``) in worker threads, in order: an RGB image, or a :class:`Skip`."""
    options = plan.options
    workers = options.num_workers or max(1, min(8, os.cpu_count() or 1))
    window = max(2 * options.batch_size, 4 * workers)
    limits = decode_limits(options)

    def job(src: Any) -> Any:
        return prepare_image(src, _same, draft=None, **limits)

    for _, item in ordered(sources, job, workers=workers, window=window):
        yield Skip(item.skip) if item.skip is not None else item.pixels


def decode_limits(options: Any) -> dict[str, Any]:
    """The keyword arguments of ``load_image`` that bound what a decode may read, from the run's options."""
    return {"max_pixels": options.max_image_pixels, "max_bytes": options.max_image_bytes}


def _same(image: Any) -> Any:
    return image

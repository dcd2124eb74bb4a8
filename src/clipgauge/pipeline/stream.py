"""The image side of the scoring step as streams that run ahead across groups of rows.

Rows are scored in *groups* (consecutive rows, never across a part boundary the caller names), and each group's
results leave as soon as its last row is scored. Images, though, are decoded and embedded by streams that span the
whole run: the decode threads keep working on the next group's images while the model finishes this one, so
decoding overlaps the model across group and part boundaries, and memory stays bounded by the streams' look-ahead
windows.

* :func:`groups` — cut the rows into groups (at most *size* rows, a new group at every new part), each knowing
  whether it is the last of its part (one row of look-ahead).
* :func:`fill_images` — fill every group's own-image needs (embeddings per model, decoded pixels) from the streams,
  yielding the groups in order, complete; the caller computes everything else per group.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics.base import MetricBatch, Need
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


def image_needs(plan: Any) -> tuple[list[Need], list[Need]]:
    """The plan's needs of each row's own image: (embeddings per model, decoded pixels)."""
    embeddings = [n for n in plan.needs if n.kind == "image_embedding" and n.own_row]
    pixels = [n for n in plan.needs if n.kind == "image"]
    return embeddings, pixels


def fill_images(plan: Any, prepared: Iterator[Group], progress: Progress | None = None) -> Iterator[Group]:
    """Fill ``batch.values`` / ``batch.errors`` of each group's own-image needs, yielding the groups in order.

    *prepared* yields groups with ``batch`` and ``blocked`` set. It is read ahead of the groups yielded here (by the
    streams' look-ahead), so it must compute only what a group needs before its images. Rows whose image cannot be
    read (blocked, no image, a file that is not there: :func:`unreadable`) never enter the streams. *progress* is
    called with a count of rows every model batch (every group where the plan reads no image).
    """
    embeds, pixels = image_needs(plan)
    if not embeds and not pixels:
        for group in prepared:
            if progress is not None:
                progress(len(group.rows))
            yield group
        return
    screened = (_screened(g) for g in prepared)
    ahead: deque[Group] = deque()  # groups the feed read ahead of the loop below
    unfed: deque[Group] = deque()  # groups the loop read before the feed reached them

    def feed() -> Iterator[Any]:
        """Each group's sources in order, or one placeholder for a group without any: the decode window counts
        it, so a long run of rows without images is never read ahead of the loop (and never held)."""
        while True:
            if unfed:
                g = unfed.popleft()
            else:
                g = next(screened, None)
                if g is None:
                    return
                ahead.append(g)
            yield from g.sources or (_NOTHING,)

    sources = feed()
    streams: list[tuple[Need, Iterator[tuple[Any, str | None]]]] = []
    if plan.decode_once:  # each image decoded once, handed to every model and to the metrics that read pixels
        branches = itertools.tee(_decoded(plan, sources), len(embeds) + len(pixels))
        for need, branch in zip(embeds + pixels, branches):
            streams.append((need, _embedded(plan, need.model, branch) if need.kind == "image_embedding"
                            else ((None, s.reason) if isinstance(s, Skip) else (s, None) for s in branch)))
    else:
        streams.append((embeds[0], _embedded(plan, embeds[0].model, sources)))
    counter = _Counter(progress, plan.options.batch_size)
    while True:
        if ahead:
            group = ahead.popleft()
        else:
            group = next(screened, None)
            if group is None:
                break
            unfed.append(group)
        n, m = len(group.rows), len(group.sources)
        for k, (need, stream) in enumerate(streams):
            if not m:
                next(stream)  # the group's placeholder
                items: list[Any] = []
            elif need.kind == "image_embedding":
                scorer = plan.embedder(need.model)
                with plan.timings.embedding(need.model, "image", m, scorer.device):
                    items = counter.take(stream, m) if k == 0 else list(itertools.islice(stream, m))
            else:
                items = list(itertools.islice(stream, m))
            errors = list(group.reasons)
            if need.kind == "image_embedding":
                emb = np.full((n, plan.embedding_dim(need.model)), np.nan, dtype=np.float32)
                for i, (e, err) in zip(group.streamed, items):
                    if e is not None:
                        emb[i] = e
                    errors[i] = err
                group.batch.values[need] = emb
            else:
                values: list[Any] = [None] * n
                for i, (v, err) in zip(group.streamed, items):
                    values[i], errors[i] = v, err
                group.batch.values[need] = values
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


def _embedded(plan: Any, spec: str, sources: Iterable[Any]) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(embedding or None, reason or None) per source, in order, from model *spec*'s image stream."""
    return plan.embedder(spec).stream_image_embeddings(sources)


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

"""Tracking from a hand-written training loop (diffusers' training scripts and the like).

Five lines (three of them new)::

    from clipgauge.integrations.loops import TrackEvery
    track = TrackEvery("openai/clip-vit-base-patch32", generate=lambda prompts: pipe(prompts).images,
                       every_n_steps=500, writers=["tensorboard:runs/ft"])
    for step, batch in enumerate(dataloader):
        ...  # your training step
        if track(step) and track.should_stop: break

``generate(prompts)`` returns the images for a list of prompts (M consecutive images per prompt, or one
list per prompt, are fine). It runs under ``torch.no_grad`` with a fixed seed by default, so the validation
noise is the same at every evaluation — the scores of different steps are then comparable — and the
training loop's random state is left exactly as it was.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import UsageError
from ..track import distributed as dist
from ..track.result import TrackResult
from ..track.tracker import CLIPTracker

Generate = Callable[..., Any]


def call_generate(generate: Generate, prompts: list[str], module: Any = None) -> Any:
    """Call ``generate(prompts)``, or ``generate(prompts, module)`` when it takes two positional arguments."""
    try:
        params = [p for p in inspect.signature(generate).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if module is not None and len(params) >= 2:
        return generate(prompts, module)
    return generate(prompts)


def evaluate(
    tracker: CLIPTracker,
    step: int,
    generate: Generate,
    *,
    prompts: Sequence[str] | None = None,
    seed: int | None = 0,
    module: Any = None,
) -> TrackResult:
    """Generate this rank's share of the validation images and :meth:`~CLIPTracker.log` them at *step*.

    *prompts* default to the tracker's library. Under torch.distributed the prompts are shared out over
    the ranks (``gather`` mode) or all generated on rank 0 (``rank0`` mode); call this on every rank.
    With *seed* set, generation runs on a forked random state seeded ``seed + rank`` (training's random
    state is untouched); ``None`` leaves randomness alone.
    """
    local = tracker.local_prompts() if prompts is None else dist.shard(list(prompts), tracker.distributed)
    images: Any = []
    if local:
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed + dist.rank())
            images = call_generate(generate, local, module)
    return tracker.log(step, images, prompts=local)


class TrackEvery:
    """Call it at every step of a training loop; every ``every_n_steps`` steps it generates and scores.

    Args:
        tracker: the :class:`CLIPTracker` to log with, or a model spec / Scorer to make one with
            ``CLIPTracker(tracker, prompts=prompts or "default", **tracker_kwargs)``.
        generate: ``generate(prompts) -> images`` (see the module docstring).
        every_n_steps: evaluate when ``step % every_n_steps == 0``.
        at_step_zero: also evaluate at step 0 (the baseline before any update); default True.
        seed: the generation seed (see :func:`evaluate`); ``None`` for the loop's own randomness.
        prompts: the prompts to generate; default: the tracker's library. When the tracker is made here,
            its prompt library (anything ``CLIPTracker(prompts=...)`` takes).
        tracker_kwargs: for a tracker made here (``writers``, ``alerts``, ``device`` …).
    """

    def __init__(self, tracker: CLIPTracker | Any, generate: Generate, every_n_steps: int = 500, *,
                 at_step_zero: bool = True, seed: int | None = 0, prompts: Any = None,
                 **tracker_kwargs: Any) -> None:
        if every_n_steps < 1:
            raise UsageError("every_n_steps must be >= 1")
        self._made_here = not isinstance(tracker, CLIPTracker)
        if self._made_here:
            tracker = CLIPTracker(tracker, prompts="default" if prompts is None else prompts, **tracker_kwargs)
            prompts = None
        elif tracker_kwargs:
            raise TypeError(f"unexpected arguments for an existing tracker: {', '.join(tracker_kwargs)}")
        self.tracker = tracker
        self.generate = generate
        self.every_n_steps = int(every_n_steps)
        self.at_step_zero = at_step_zero
        self.seed = seed
        self.prompts = list(prompts) if prompts is not None else None
        self._last_step: int | None = None

    def due(self, step: int) -> bool:
        """Whether :meth:`__call__` evaluates at *step* (each step at most once)."""
        if step == self._last_step or step % self.every_n_steps:
            return False
        return step != 0 or self.at_step_zero

    def __call__(self, step: int) -> TrackResult | None:
        """Evaluate if *step* is due; returns the result, or None when nothing was done."""
        if not self.due(step):
            return None
        self._last_step = step
        return evaluate(self.tracker, step, self.generate, prompts=self.prompts, seed=self.seed)

    @property
    def should_stop(self) -> bool:
        """True once an alert made with ``stop=True`` has fired (the same on every rank)."""
        return self.tracker.should_stop

    @property
    def last(self) -> TrackResult | None:
        return self.tracker.last

    def close(self) -> None:
        """Flush the writers (and close them when the tracker was made here)."""
        if self._made_here:
            self.tracker.close()
        else:
            self.tracker.flush()

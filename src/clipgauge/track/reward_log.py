"""The training reward beside the evaluation score: :meth:`CLIPTracker.log_reward <.tracker.CLIPTracker.log_reward>`.

A reward-trained model (DDPO, DRaFT, AlignProp, ReFL …) is optimised on its own training samples; the tracker
scores fixed validation prompts. Writing both side by side, in the same units, shows when the two part: a
training reward that keeps rising while the evaluation score stalls or falls is the usual sign of reward
hacking or over-fitting to the training prompts.

Each call writes, at its step, ``train_reward/NAME/mean``, ``/min``, ``/max``, ``/std`` (sample standard
deviation, ``ddof=1``, NaN for fewer than two values — the definition of ``clip/std``), ``/n`` (finite values)
and ``/nonfinite`` (NaN and ±inf values: counted, and left out of the statistics). All are in the reward's own
units (e.g. cosine for a clip reward at the ``cosine`` scale, the aesthetic predictor's 1–10 scale). With a key
to compare to (``compare_to="clip/mean"``, or derived from a ``reward`` object) and an evaluation that logged it,
it also writes ``train_reward/NAME/gap`` = training mean − that evaluation's value (same units; positive: the
training reward is above the evaluation score) and ``train_reward/NAME/eval_step``, the step of the evaluation
compared to (a gap is only as recent as the last ``log``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import clipgauge.track.distributed as dist

from ..errors import UsageError
from .result import summary_stats
from .writers.base import scalars_result

if TYPE_CHECKING:
    from .tracker import CLIPTracker

logger = logging.getLogger("clipgauge.track")

#: The group every training-reward scalar is written under: ``train_reward/NAME/mean`` …
GROUP = "train_reward"


def reward_values(rewards: Any) -> np.ndarray:
    """*rewards* as a flat float64 array: a tensor of any shape, device and dtype (detached first, so one that
    requires grad is fine), a numpy array, a number, or a list/tuple of any of these."""
    if isinstance(rewards, torch.Tensor):
        return rewards.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy()
    if isinstance(rewards, (list, tuple)):
        parts = [reward_values(r) for r in rewards]
        return np.concatenate(parts) if parts else np.zeros(0)
    try:
        return np.asarray(rewards, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UsageError(f"rewards must be numbers (a tensor, an array or a list), not {type(rewards).__name__}") \
            from None


def reward_stats(values: np.ndarray, key: str) -> dict[str, float]:
    """``KEY/mean``, ``/min``, ``/max``, ``/std`` (ddof=1), ``/n`` of the finite *values*, and ``KEY/nonfinite``,
    the number of NaN and ±inf values left out."""
    finite = np.isfinite(values)
    stats = summary_stats(values[finite], key)
    stats[f"{key}/nonfinite"] = float(values.size - int(finite.sum()))
    return stats


def log_reward(tracker: CLIPTracker, step: int, rewards: Any, *, name: str | None = None,
               compare_to: str | None = None, reward: Any = None) -> dict[str, float]:
    """Write the training batch's per-sample *rewards* at *step* beside the evaluation score; return the scalars.

    Writes ``train_reward/NAME/mean``, ``/min``, ``/max``, ``/std`` (ddof=1), ``/n``, ``/nonfinite`` to the
    tracker's writers (rank 0 only, like :meth:`log`), in the reward's own units. NaN and ±inf rewards are counted in
    ``/nonfinite`` and left out of the statistics.

    Args:
        step: the training step (the one the loss is logged at; W&B needs steps that never go back).
        rewards: the batch's rewards, one per sample: a tensor (any shape, device, dtype; detached, so one that
            requires grad is fine), a numpy array or a list of floats.
        name: the ``NAME`` in ``train_reward/NAME/…``; default: ``reward.metric``, else ``"reward"``.
        compare_to: a key this tracker logs (``"clip/mean"``, ``"aesthetic/mean"``, ``"pickscore/mean"`` …):
            when the last evaluation holds it, also writes ``train_reward/NAME/gap`` (training mean − that
            evaluation value, same units) and ``train_reward/NAME/eval_step`` (that evaluation's step). Default:
            ``reward.eval_key(tracker.prefix, tracker.base_scale)`` when *reward* is given, else no gap.
        reward: the :class:`clipgauge.rewards.Reward` the rewards came from (any object with ``metric`` and
            ``eval_key(prefix, scale)``), to name the scalars and find the evaluation key of the same score.

    Under torch.distributed, with ``distributed="gather"`` (the default) this is collective like :meth:`log`: call
    it on every rank; the rewards of all ranks are gathered, and every rank returns the same scalars. With
    ``distributed="rank0"`` it is rank-local and not collective: each rank returns the statistics of its own
    rewards and only rank 0's are written (call it on rank 0 alone if you like).
    """
    if reward is not None:
        name = name if name is not None else str(reward.metric)
        if compare_to is None:
            compare_to = reward.eval_key(tracker.prefix, tracker.base_scale)
            if compare_to is None:
                _note_once(tracker, f"scale:{name}", f"no train_reward/{name}/gap: the {name!r} reward's scale "
                           f"differs from the tracker's ({tracker.base_scale!r}), so the two are not comparable")
    name = "reward" if name is None else name
    if not isinstance(name, str) or not name.strip("/ "):
        raise UsageError(f"a reward name must be non-empty text, not {name!r}")
    key = f"{GROUP}/{name.strip('/ ')}"
    values = reward_values(rewards)
    if tracker.distributed == "gather":
        values = np.concatenate(dist.all_gather(values))
    scalars = reward_stats(values, key)
    last = tracker.last
    if compare_to is not None and last is not None:
        if compare_to in last.metrics:
            scalars[f"{key}/gap"] = scalars[f"{key}/mean"] - float(last.metrics[compare_to])
            scalars[f"{key}/eval_step"] = float(last.step)
        else:
            _note_once(tracker, f"key:{key}:{compare_to}", f"no {key}/gap: the tracker's evaluations have no "
                       f"{compare_to!r} (they log {_some_keys(last.metrics)})")
    if dist.rank() == 0:
        wall_time = time.time()
        for writer in tracker._ensure_writers():
            write = getattr(writer, "write_scalars", None)
            if write is not None:
                write(int(step), scalars, wall_time)
            else:  # a user object with only write(result)
                writer.write(scalars_result(int(step), scalars, wall_time))
    return scalars


def _note_once(tracker: CLIPTracker, tag: str, message: str) -> None:
    """Log *message* as a warning once per tracker and *tag* (on rank 0), not at every training step."""
    seen: set[str] = vars(tracker).setdefault("_reward_notes", set())
    if tag not in seen:
        seen.add(tag)
        if dist.rank() == 0:
            logger.warning("clipgauge: %s", message)


def _some_keys(metrics: dict[str, float], limit: int = 6) -> str:
    keys = [k for k in metrics if "/prompt/" not in k]
    return ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "")

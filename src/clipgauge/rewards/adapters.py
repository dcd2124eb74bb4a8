"""Rewards where fine-tuners already call one: the ``reward_fn(images, prompts, metadata)`` of ddpo-pytorch and
the DDPO / GRPO-style training code derived from it, and a converter of the image batches they pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import UsageError


def as_image_batch(images: Any, *, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """A float tensor ``(B, 3, H, W)`` with values in *value_range* from what samplers hand over: a float tensor
    ``(B, 3, H, W)`` (returned as is), a uint8 tensor or array ``(B, H, W, 3)`` or ``(B, 3, H, W)`` (levels / 255,
    mapped to *value_range*), a float array, or a list of PIL images of one size. :class:`UsageError` otherwise."""
    if isinstance(images, (list, tuple)) and images and all(hasattr(im, "convert") for im in images):
        images = np.stack([np.asarray(im.convert("RGB")) for im in images])
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(getattr(images, "shape", ()))
        raise UsageError(f"images must be a batch (B, 3, H, W) or (B, H, W, 3), got {type(images).__name__} {shape}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise UsageError(f"images must have 3 colour channels, got shape {tuple(images.shape)}")
    if images.is_floating_point():
        return images
    if images.dtype != torch.uint8:
        raise UsageError(f"integer images must be uint8 levels 0-255, got {images.dtype}")
    low, high = value_range
    return images.float() / 255.0 * (high - low) + low


def ddpo_reward_fn(reward: torch.nn.Module, *, batch_size: int | None = None
                   ) -> Callable[[Any, Sequence[str], Any], tuple[np.ndarray, dict[str, Any]]]:
    """``reward_fn(images, prompts, metadata) -> (rewards, metadata)`` as ddpo-pytorch's ``rewards.py`` defines it
    (and the DDPO / GRPO trainers derived from it call it): *images* a batch (anything :func:`as_image_batch`
    takes, in the reward's ``value_range`` when float), *prompts* one per image, *metadata* ignored. Returns the
    rewards as a float32 numpy array ``(B,)`` in the metric's scale (policy-gradient methods need no gradient, so
    it runs under ``torch.no_grad``, in chunks of *batch_size*) and ``{"metric", "column", "model"}``."""
    def reward_fn(images: Any, prompts: Sequence[str], metadata: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        batch = as_image_batch(images, value_range=reward.value_range)
        texts = [prompts] * len(batch) if isinstance(prompts, str) else list(prompts)
        step = int(batch_size or len(batch) or 1)
        parts = []
        with torch.no_grad():
            for start in range(0, len(batch), step):
                chunk = batch[start:start + step].to(next(reward.parameters()).device)
                parts.append(reward(chunk, texts[start:start + step]).float().cpu())
        values = torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)
        return values, {"metric": reward.metric, "column": reward.column, "model": reward.model_spec}

    return reward_fn

"""Differentiable rewards: the scores of ``clipgauge score``, as torch modules with gradients to the images.

>>> from clipgauge.rewards import load_reward
>>> reward = load_reward("aesthetic", device="cuda", dtype=torch.bfloat16)   # doctest: +SKIP
>>> loss = -reward(images, prompts).mean()                                    # images (B, 3, H, W) in [0, 1]

See docs/rewards.md for the measured deviation from the evaluation path, memory figures and the adapters.
"""

from __future__ import annotations

from .adapters import as_image_batch, ddpo_reward_fn
from .heads import RewardHead, register_reward_head, reward_metrics
from .preprocess import ResizeCropNormalize, ResizeLongestPadNormalize, torch_preprocess
from .reward import Reward, load_reward

__all__ = ["Reward", "RewardHead", "ResizeCropNormalize", "ResizeLongestPadNormalize", "as_image_batch",
           "ddpo_reward_fn", "load_reward", "register_reward_head", "reward_metrics", "torch_preprocess"]

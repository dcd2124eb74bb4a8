"""DRaFT on the demo CLIP: fine-tune a tiny diffusers UNet on a differentiable reward, on CPU, in seconds.

DRaFT (Clark et al. 2023, "Directly Fine-Tuning Diffusion Models on Differentiable Rewards") samples images
with the diffusion model's own sampler, scores them with a differentiable reward and backpropagates
``-reward`` through the sampling chain into the model's weights. DRaFT-K keeps the gradient through the
last K denoising steps only (earlier steps run under ``torch.no_grad``); K = 1 is the cheapest.

Here the model is a freshly initialised ``UNet2DConditionModel`` (1.0 M parameters) in pixel space at
32 x 32, cross-attending to the demo CLIP's text embedding of the prompt, sampled with 4 ``DDIMScheduler``
steps (x0-prediction, "trailing" timesteps: the last step returns the UNet's prediction). The reward is
``load_reward("clip", model="demo", value_range=(-1, 1))`` (cosine of the demo CLIP's embeddings), which is
frozen: only the UNet is optimised. Its mean reward rises over the steps, for a fixed seed::

    python examples/draft_demo.py --steps 20 --seed 0

To run it on a real pipeline, swap the pieces (the loop is the same)::

    pipe = StableDiffusionPipeline.from_pretrained(...)       # train pipe.unet (or LoRA adapters on it)
    latents -> pipe.unet(latents, t, encoder_hidden_states=pipe.encode_prompt(...)) per scheduler step
    images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample   # in [-1, 1]
    reward = load_reward("aesthetic", value_range=(-1, 1))    # or "pickscore", "hpsv2", "clip"

and use gradient checkpointing on the UNet and VAE, bf16, and a smaller learning rate.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from clipgauge.rewards import load_reward

PROMPTS = ("a red circle", "a blue square", "a yellow star", "a green triangle")


def tiny_unet(text_dim: int, size: int = 32) -> UNet2DConditionModel:
    """A randomly initialised pixel-space UNet with one cross-attention block on the text embedding."""
    return UNet2DConditionModel(
        sample_size=size, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=text_dim, attention_head_dim=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def sample(unet: UNet2DConditionModel, scheduler: DDIMScheduler, text: torch.Tensor, noise: torch.Tensor,
           grad_steps: int) -> torch.Tensor:
    """DDIM sampling from *noise*, with gradients through the last *grad_steps* steps (DRaFT-K)."""
    x = noise
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        with torch.set_grad_enabled(i >= len(timesteps) - grad_steps):
            pred = unet(x, t, encoder_hidden_states=text).sample  # the clean image (x0-prediction)
            x = scheduler.step(pred, t, x, eta=0.0).prev_sample
    return x  # in about [-1, 1]


def train(steps: int = 20, seed: int = 0, *, batch_per_prompt: int = 2, sampling_steps: int = 4,
          grad_steps: int = 1, lr: float = 3e-3, size: int = 32, prompts: Sequence[str] = PROMPTS,
          verbose: bool = False) -> list[float]:
    """Fine-tune a tiny UNet on the demo CLIP reward; returns the mean reward of each step's batch
    (measured before that step's update)."""
    torch.manual_seed(seed)
    reward = load_reward("clip", model="demo", value_range=(-1, 1))
    batch_prompts = [p for p in prompts for _ in range(batch_per_prompt)]
    with torch.no_grad():
        text = reward.text_embeddings(batch_prompts).unsqueeze(1)  # (B, 1, D): one "token" per prompt
    unet = tiny_unet(text.shape[-1], size)
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="trailing",
                              prediction_type="sample")
    scheduler.set_timesteps(sampling_steps)
    optimizer = torch.optim.Adam(unet.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    for step in range(steps):
        noise = torch.randn(len(batch_prompts), 3, size, size, generator=generator)
        images = sample(unet, scheduler, text, noise, grad_steps)
        r = reward(images, batch_prompts)
        loss = -r.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(r.detach().mean()))
        if verbose:
            print(f"step {step:3d}  reward {history[-1]:.4f}", flush=True)
    return history


def main(argv: Sequence[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling-steps", type=int, default=4, help="DDIM steps per sample")
    parser.add_argument("--grad-steps", type=int, default=1, help="K of DRaFT-K: steps that keep gradients")
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    history = train(args.steps, args.seed, sampling_steps=args.sampling_steps, grad_steps=args.grad_steps,
                    lr=args.lr, verbose=True)
    print(f"reward: first {history[0]:.4f}  last {history[-1]:.4f}")
    return history


if __name__ == "__main__":
    main()

"""How far the differentiable reward preprocessing (``clipgauge.rewards``) is from the exact evaluation path, and how
far the tensor recipes of other reward libraries are, measured on the same images with the same models.

For each model family and image size the eval path is ``encoder.preprocess(PIL image)`` (PIL resize, crop, normalise;
HPSv2: its tensor resize and pad) → ``encode_images`` → L2 normalise; every other row feeds the *same* uint8 images as
float tensors ``uint8 / 255`` through a tensor recipe into the same image tower. Columns: max |Δpixel| of the model
input (normalised units; "-" when the recipe's input has another shape), max and mean |cos − cos_eval| with the eval
text embedding of each image's prompt, max |e − e_eval| per embedding component and max 1 − cos(e, e_eval).

Peers' recipes (each written out below, citing the code it restates):
* ``trl/AlignProp Resize`` — ``torchvision.transforms.Resize(224)`` on the tensor (bilinear, no crop) + Normalize,
  with antialias=True (torchvision ≥ 0.17 default) and antialias=False (older torchvision);
* ``imscore PickScore`` — Resize(224, bicubic) + CenterCrop(224) + Normalize on the tensor;
* ``imscore HPSv2`` — ResizeMaxSize(224) (bicubic tensor resize of the longest side, zero pad) + Normalize;
* ``ddpo CLIPProcessor`` — round to uint8, ``CLIPImageProcessor`` (transformers 5: torchvision backend), no gradient;
* ``pyiqa clip_preprocess_tensor`` — ``T.functional.resize(bicubic, antialias=True)`` + center_crop + normalize.

    python benchmarks/reward_preprocessing.py            # 32 images per size, all families
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

PROMPTS = ["a red circle", "two yellow stars", "a green triangle on a white background",
           "a red circle to the left of a blue star", "a blue square", "two purple stars",
           "an orange star on a black background", "a yellow square above a green circle"]


# ------------------------------------------------------------------------------------------------ images
def smooth_noise(seed: int, width: int, height: int) -> Image.Image:
    """``tests/conftest.py`` ``random_rgb``: bilinear-upsampled coarse noise plus fine noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((width, height), Image.BILINEAR)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, (height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_images(n: int, width: int, height: int) -> tuple[list[Image.Image], list[str]]:
    """*n* images (a quarter rendered demo scenes, the rest smooth noise) and one prompt each."""
    from clipgauge.demo.scenes import render_examples

    n_demo = n // 4
    side = max(width, height)
    scenes = render_examples(PROMPTS[:n_demo], per_prompt=1, seed=0, size=side)
    images, prompts = [], []
    for ex in scenes:
        left, top = (side - width) // 2, (side - height) // 2
        images.append(ex.image.convert("RGB").crop((left, top, left + width, top + height)))
        prompts.append(ex.prompt)
    for i in range(n - len(images)):
        images.append(smooth_noise(i, width, height))
        prompts.append(PROMPTS[i % len(PROMPTS)])
    return images, prompts


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """The same uint8 levels as float (B, 3, H, W) in [0, 1]: what a generator would hand a reward."""
    return torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).float() / 255.0


# ------------------------------------------------------------------------------------------------ peers' recipes
def trl_alignprop(size: int, mean, std, antialias: bool):
    """trl/models/auxiliary_modules.py ``AestheticScorer.__call__`` (commit 4607f96): ``torchvision.transforms.
    Resize(self.target_size)(images)`` then ``self.normalize``; AlignProp alignprop_trainer.py:94 and :122 (commit
    b22918a), same for its aesthetic and HPSv2 losses. Bilinear, shortest side to 224, no crop; antialias is
    torchvision's default (True since 0.17, False before), so both are measured."""
    def run(x):
        return T.Normalize(mean, std)(T.Resize(size, antialias=antialias)(x))
    return run


def imscore_pickscore(size: int, mean, std):
    """imscore src/imscore/pickscore/model.py:20-31 (RE-N-Y/imscore cb28b8b, "score has an error of +-0.1"):
    ``Resize(224, interpolation=3)`` → ``CenterCrop(224)`` → ``Normalize`` on the tensor (antialias default)."""
    def run(x):
        return T.Normalize(mean, std)(T.CenterCrop(size)(T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)(x)))
    return run


def imscore_hpsv2(size: int, mean, std):
    """imscore src/imscore/hps/model.py:15-34 ``ResizeMaxSize`` and :56-63 ``_process``: bicubic tensor resize of the
    longest side to 224 (``round(dim * scale)``), zero padding (only when a resize happened), Normalize."""
    def run(x):
        height, width = x.shape[-2:]
        scale = size / float(max(height, width))
        if scale != 1.0:
            new = tuple(round(dim * scale) for dim in (height, width))
            x = TF.resize(x, list(new), T.InterpolationMode.BICUBIC)
            hpad, wpad = size - new[0], size - new[1]
            x = TF.pad(x, padding=[wpad // 2, hpad // 2, wpad - wpad // 2, hpad - hpad // 2], fill=0)
        return T.Normalize(mean, std)(x)
    return run


def ddpo_processor(size: int, mean, std):
    """ddpo-pytorch ddpo_pytorch/rewards.py ``aesthetic_score`` (``(images * 255).round().clamp(0, 255).to(uint8)``)
    and aesthetic_scorer.py ``AestheticScorer.__call__`` (``self.processor(images=images, return_tensors="pt")`` under
    ``@torch.no_grad()``), commit 1958463. With transformers 5 + torchvision, ``CLIPImageProcessor`` is the
    torchvision backend; built here with the model's own sizes and mean/std."""
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=list(mean), image_std=list(std), resample=3)

    def run(x):
        u8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
        return proc(images=list(u8), return_tensors="pt")["pixel_values"]
    run.note = f"CLIPImageProcessor backend: {type(proc).__mro__[1].__name__}"
    return run


def pyiqa_tensor(size: int, mean, std):
    """pyiqa/archs/arch_util.py:134-157 ``clip_preprocess_tensor`` (chaofengc/IQA-PyTorch 01ae427; "slightly
    different with original preprocess function with PIL image input"): ``T.functional.resize(x, 224, BICUBIC,
    antialias=True)`` → ``center_crop(224)`` → ``normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)``."""
    def run(x):
        x = TF.resize(x, size, interpolation=T.InterpolationMode.BICUBIC, antialias=True)
        return TF.normalize(TF.center_crop(x, size), mean, std)
    return run


def recipes(family: str, size: int, mean, std) -> dict:
    out = {"trl/AlignProp Resize, antialias=True": trl_alignprop(size, mean, std, True),
           "trl/AlignProp Resize, antialias=False": trl_alignprop(size, mean, std, False)}
    if family == "hpsv2":
        out["imscore HPSv2 (pad)"] = imscore_hpsv2(size, mean, std)
    out["imscore PickScore (crop)"] = imscore_pickscore(size, mean, std)
    out["ddpo CLIPProcessor (no grad)"] = ddpo_processor(size, mean, std)
    out["pyiqa clip_preprocess_tensor"] = pyiqa_tensor(size, mean, std)
    return out


# ------------------------------------------------------------------------------------------------ measuring
def build_models(folder: Path) -> list[tuple[str, str, str]]:
    """(family label, family kind, model spec) of each model measured."""
    from tiny_clip import TINY_OPENCLIP_ARCH, save_tiny_hf_clip, save_tiny_openclip

    hf = save_tiny_hf_clip(folder / "hf", seed=0, image_size=224)
    ckpt = save_tiny_openclip(folder / "oc", seed=0)
    return [("transformers tiny CLIP (224 px, random)", "crop", f"hf:{hf}"),
            ("OpenCLIP tiny (224 px, random)", "crop", f"open_clip:{TINY_OPENCLIP_ARCH}:{ckpt}"),
            ("HPSv2 family on the tiny OpenCLIP (224 px, random)", "hpsv2", f"hpsv2:{TINY_OPENCLIP_ARCH}:{ckpt}"),
            ("demo CLIP (64 px, trained)", "crop", "demo")]


def model_constants(reward) -> tuple[int, tuple, tuple]:
    """Input side, mean and std of the reward's model (from the module clipgauge.rewards builds for it)."""
    from clipgauge.rewards.preprocess import torch_preprocess

    mod = torch_preprocess(reward.encoder)
    return int(mod.size[0]), tuple(mod.mean.flatten().tolist()), tuple(mod.std.flatten().tolist())


def unit(e: torch.Tensor) -> torch.Tensor:
    return F.normalize(e.float(), dim=-1)


@torch.no_grad()
def measure(reward, kind: str, images: list[Image.Image], prompts: list[str]) -> list[dict]:
    enc = reward.encoder
    size, mean, std = model_constants(reward)
    text = unit(enc.encode_texts(enc.tokenize(prompts).inputs))
    p_eval = torch.stack([enc.preprocess(im) for im in images])
    e_eval = unit(enc.encode_images(p_eval))
    c_eval = (e_eval * text).sum(-1)
    x = to_tensor(images)
    rows = []

    def row(name, pixels, emb, note=""):
        c = (emb * text).sum(-1)
        dpix = (pixels - p_eval).abs().max().item() if pixels is not None and pixels.shape == p_eval.shape else None
        rows.append({"recipe": name, "dpix": dpix, "dcos_max": (c - c_eval).abs().max().item(),
                     "dcos_mean": (c - c_eval).abs().mean().item(), "demb": (emb - e_eval).abs().max().item(),
                     "one_minus_cos": (1 - (emb * e_eval).sum(-1)).max().item(), "note": note})

    p_rew = reward.preprocess(x)
    e_rew = unit(reward.image_embeddings(x))
    r = reward(x, prompts)
    consistency = (r.float() - (e_rew * text).sum(-1)).abs().max().item()
    row("clipgauge reward", p_rew, e_rew, consistency)
    for name, fn in recipes(kind, size, mean, std).items():
        try:
            pixels = fn(x).float()
            emb = unit(enc.encode_images(pixels))
        except Exception as exc:  # noqa: BLE001 - a recipe that cannot run on this shape is reported, not fatal
            rows.append({"recipe": name, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:90]}"})
            continue
        row(name, pixels, emb, getattr(fn, "note", ""))
    return rows


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=32, help="images per size")
    args = parser.parse_args()
    torch.manual_seed(0)
    from clipgauge.rewards import load_reward

    print(f"torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, "
          f"transformers {__import__('transformers').__version__}, open_clip {__import__('open_clip').__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, kind, spec in build_models(Path(tmp)):
            try:
                reward = load_reward("clip", model=spec)
            except Exception as exc:  # noqa: BLE001 - report and go on to the next family
                print(f"\n### {label}\n\nload_reward('clip', model={spec!r}) failed: {type(exc).__name__}: {exc}")
                continue
            size = model_constants(reward)[0]
            sizes = [(size, size, "no resize"), (512, 512, "downscale"), (768, 512, "non-square"),
                     (160, 160, "upscale" if size > 160 else "downscale")]
            print(f"\n### {label}: `{spec.split(':')[0]}`\n")
            print("| images | recipe | max abs Δpixel | max abs Δcos | mean abs Δcos | max abs Δe "
                  "| max 1 − cos(e, e_eval) |")
            print("|---|---|---|---|---|---|---|")
            notes, consistency = set(), 0.0
            for w, h, what in sizes:
                images, prompts = make_images(args.n, w, h)
                for r in measure(reward, kind, images, prompts):
                    if "error" in r:
                        print(f"| {w}×{h} ({what}) | {r['recipe']} | fails: {r['error']} | | | | |")
                        continue
                    if isinstance(r["note"], float):
                        consistency = max(consistency, r["note"])
                    elif r["note"]:
                        notes.add(r["note"])
                    print(f"| {w}×{h} ({what}) | {r['recipe']} | {fmt(r['dpix'])} | {fmt(r['dcos_max'])} | "
                          f"{fmt(r['dcos_mean'])} | {fmt(r['demb'])} | {fmt(r['one_minus_cos'])} |")
            notes.add(f"reward(images, prompts) vs cos(reward.image_embeddings, eval text embedding): max abs "
                      f"difference {consistency:.1e} over all sizes")
            print("\n" + "\n".join(f"- {note}" for note in sorted(notes)))


if __name__ == "__main__":
    main()

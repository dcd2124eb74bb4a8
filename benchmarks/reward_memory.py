"""Memory and time of a differentiable reward's forward + backward to the images (``clipgauge.rewards``), with and
without gradient checkpointing, in fp32 and under bf16 autocast, plus a ``torch.compile`` try on a tiny model.

Model: a ``transformers.CLIPModel`` with ViT-L/14 vision shapes (hidden 1024, 24 layers, 16 heads, MLP 4096, patch 14,
224 px, projection 768) and a small real text tower (real CLIP tokenizer; 2 layers, width 64), random weights, saved
to a temp folder and loaded with ``load_reward("clip", model="hf:DIR")``. Input: 8 images (B, 3, 512, 512) in [0, 1]
with ``requires_grad``; loss ``-reward(images, prompts).mean()``; ``loss.backward()``.

Memory, two ways, each config in its own subprocess:
* saved for backward: bytes of the distinct storages packed by ``torch.autograd.graph.saved_tensors_hooks`` during the
  forward, parameters excluded — what stays alive between forward and backward on any device (with checkpointing,
  one block's activations are rebuilt during the backward on top of this);
* peak RSS: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after forward + backward minus the RSS with the model
  loaded (CPU allocator: includes transient buffers and allocator slack).
Time: the second of two forward + backward passes (the first warms up), wall clock.

    python benchmarks/reward_memory.py                  # batch 8 at 512 px, all four configs, and torch.compile
    python benchmarks/reward_memory.py --batch 2        # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
TOOLS = str(Path(__file__).resolve().parents[1] / "tools")
sys.path.insert(0, TOOLS)

CONFIGS = {"fp32": (False, False), "fp32 + checkpointing": (False, True),
           "bf16 autocast": (True, False), "bf16 autocast + checkpointing": (True, True)}
PROMPTS = ["a red circle", "two yellow stars", "a green triangle on a white background", "a blue square"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def save_vit_l14(folder: Path) -> Path:
    """A random CLIPModel with ViT-L/14 vision shapes and a small text tower, saved like a hub download."""
    import torch
    from tiny_clip import CLIP_VOCAB_SIZE, save_clip_tokenizer
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tok = save_clip_tokenizer(folder)
    text = dict(vocab_size=CLIP_VOCAB_SIZE, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=224, patch_size=14)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=768)).eval().save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def child(folder: str, config: str, batch: int, side: int) -> None:
    import torch

    from clipgauge.rewards import load_reward

    autocast, ckpt = CONFIGS[config]
    reward = load_reward("clip", model=f"hf:{folder}")
    reward.gradient_checkpointing(ckpt)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    reward.text_embeddings(prompts)  # cached text side, as in a training loop
    params = {p.untyped_storage().data_ptr() for p in reward.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in reward.buffers()}
    gen = torch.Generator().manual_seed(0)
    float(sum(p.float().sum() for p in reward.parameters()))  # fault every weight page in (safetensors mmap)
    base = _rss_mb()
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    seconds, grad_norm = [], 0.0
    for step in range(2):
        images = torch.rand(batch, 3, side, side, generator=gen, requires_grad=True)
        start = time.perf_counter()
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
        with ctx, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = -reward(images, prompts).float().mean()
        loss.backward()
        seconds.append(time.perf_counter() - start)
        grad_norm = float(images.grad.norm())
        if step == 0:
            saved_mb = sum(saved.values()) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"config": config, "saved_mb": saved_mb, "peak_extra_mb": peak - base, "model_rss_mb": base,
                      "first_s": seconds[0], "second_s": seconds[1], "grad_norm": grad_norm}))


def compile_child(batch: int) -> None:
    """``torch.compile(reward)`` on the tiny transformers CLIP: does forward + backward work on CPU, and how fast (a
    fresh inductor cache, so the first call includes the whole compilation)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    import torch
    from tiny_clip import save_tiny_hf_clip

    from clipgauge.rewards import load_reward

    with tempfile.TemporaryDirectory() as tmp:
        reward = load_reward("clip", model=f"hf:{save_tiny_hf_clip(Path(tmp) / 'hf', seed=0)}")
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        out = {}
        for name, fn in (("eager", reward), ("compiled", torch.compile(reward))):
            times, values = [], None
            for _ in range(12):
                images = torch.rand(batch, 3, 512, 512, generator=torch.Generator().manual_seed(0),
                                    requires_grad=True)
                start = time.perf_counter()
                values = fn(images, prompts)
                (-values.mean()).backward()
                times.append(time.perf_counter() - start)
            out[name] = {"first_s": times[0], "steady_s": sorted(times[2:])[len(times[2:]) // 2],
                         "values": values.detach().tolist(), "grad": images.grad.norm().item()}
        out["max_abs_diff"] = max(abs(a - b) for a, b in zip(out["eager"]["values"], out["compiled"]["values"]))
        print(json.dumps(out))


def run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": " ".join(proc.stderr.strip().splitlines()[-1:])[:300]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "CONFIG"))
    parser.add_argument("--compile-child", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--compile-only", action="store_true", help="only the torch.compile try")
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.batch, args.side)
    if args.compile_child:
        return compile_child(args.batch)

    import torch

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch} at "
          f"{args.side}×{args.side}, ViT-L/14 vision shapes (random weights)\n")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.compile_only:
            folder = save_vit_l14(Path(tmp) / "vit_l14")
            rows = {name: run(["--child", str(folder), name, "--batch", str(args.batch), "--side", str(args.side)])
                    for name in CONFIGS}
    if rows:
        print("| config | saved for backward (MB) | peak RSS over loaded model (MB) | forward + backward (s) | "
              "first call (s) | ‖∂loss/∂images‖ |")
        print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error']} | | | | |")
            continue
        print(f"| {name} | {r['saved_mb']:.0f} | {r['peak_extra_mb']:.0f} | {r['second_s']:.2f} | "
              f"{r['first_s']:.2f} | {r['grad_norm']:.3e} |")
    ok = [r for r in rows.values() if "error" not in r]
    if ok:
        print(f"\nloaded model RSS: {ok[0]['model_rss_mb']:.0f} MB")
    for a, b in (("fp32", "fp32 + checkpointing"), ("bf16 autocast", "bf16 autocast + checkpointing")):
        if a in rows and b in rows and "error" not in rows[a] and "error" not in rows[b]:
            print(f"- checkpointing, {a}: saved-for-backward {rows[a]['saved_mb']:.0f} → {rows[b]['saved_mb']:.0f} MB "
                  f"(×{rows[a]['saved_mb'] / max(rows[b]['saved_mb'], 1e-9):.1f} less), peak RSS "
                  f"{rows[a]['peak_extra_mb']:.0f} → {rows[b]['peak_extra_mb']:.0f} MB, time "
                  f"×{rows[b]['second_s'] / rows[a]['second_s']:.2f}")
    if not args.skip_compile:
        r = run(["--compile-child", "--batch", str(args.batch)])
        if "error" in r:
            print(f"\ntorch.compile(reward) on the tiny CLIP, forward + backward on CPU: fails: {r['error']}")
        else:
            print(f"\ntorch.compile(reward) on the tiny CLIP (batch {args.batch} at 512 px), forward + backward on "
                  f"CPU: works; first call {r['compiled']['first_s']:.1f} s (eager {r['eager']['first_s']:.2f} s), "
                  f"steady state {r['compiled']['steady_s'] * 1e3:.1f} ms vs eager "
                  f"{r['eager']['steady_s'] * 1e3:.1f} ms (median of calls 3-12), max |compiled − eager| reward "
                  f"{r['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()

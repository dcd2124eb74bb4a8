#!/usr/bin/env python
"""Train the demo aesthetic head shipped in ``src/clipgauge/demo/aesthetic`` (``--metric demo-aesthetic``).

Data: clean renders of the demo grammar and degraded copies of them (blur, noise, JPEG blocking, low contrast,
an object cut off by the border; ``tools/demo_degradations.py``). Input: the L2-normalised image embedding of the
shipped demo CLIP, exactly as ``clipgauge.Scorer("demo").embed_images`` gives it (what the metric feeds the head).
Head: the LAION ``v2-relu`` layout (``ava+logos-l14-reluMSE.pth``: ``layers.0/3/6/9/11``, Linear + ReLU four times,
then Linear to one score) with small hidden widths, so that the one loader of ``--metric aesthetic`` reads it.
A linear (v1) head cannot do it: on the 64-wide demo embedding the directions of the five degradations conflict
(measured: a linear head ranks cut-off objects right in about 85% of pairs, the others in 90-99%).

Objective: a pairwise logistic ranking loss on (clean, degraded copy) pairs, minibatches drawing every degradation
kind equally often, plus a quarter of a pointwise logistic loss (clean vs degraded) so that scores are comparable
across scenes. Cut-off objects, the kind the demo embedding shows least, get four times the training pairs.
Afterwards the last layer is rescaled (an affine map with a positive slope, which keeps every ranking) so that
the training set's clean renders average 7 and degraded ones 3, a range like LAION's 1-10.

Usage (the shipped head; the defaults are its recipe)::

    python tools/train_demo_aesthetic.py --out src/clipgauge/demo/aesthetic

About 10 minutes on 2 CPU threads, most of it rendering and embedding 90,000 images (``--cache DIR`` keeps the
embeddings for reruns with other training settings).

Everything is seeded; the held-out evaluation in the model card uses renders of ``--eval-seed``, never trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "src", ROOT / "tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import demo_degradations as dd  # noqa: E402

#: the v2-relu layout: positions of the linear layers in the published ``nn.Sequential``
LINEAR_INDICES = (0, 3, 6, 9, 11)
CLEAN_TARGET, DEGRADED_TARGET = 7.0, 3.0


def _kinds(text: str) -> str:
    if not text or not set(text.split(",")) <= set(dd.KINDS):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(dd.KINDS)}, got {text!r}")
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "src" / "clipgauge" / "demo" / "aesthetic")
    p.add_argument("--seed", type=int, default=0, help="seed of the training renders and the initialisation")
    p.add_argument("--eval-seed", type=int, default=5,
                   help="seed of the held-out renders of the model card (seed 1 was the validation set of the "
                        "settings below, seed 2 is the test's)")
    p.add_argument("--train-pairs", type=int, default=40000, help="(clean, degraded) training pairs")
    p.add_argument("--train-kinds", type=_kinds, default="blur,noise,jpeg,contrast,cutoff,cutoff,cutoff,cutoff",
                   help="degradation of each training pair, in turn (a kind named k times gets k times the pairs)")
    p.add_argument("--eval-pairs", type=int, default=5000, help="held-out pairs in the model card (kinds equally)")
    p.add_argument("--widths", default="512,128,32,16", help="the four hidden widths")
    p.add_argument("--steps", type=int, default=12000, help="AdamW steps")
    p.add_argument("--batch-size", type=int, default=512, help="pairs per step")
    p.add_argument("--balance", choices=("kinds", "pairs"), default="kinds",
                   help="draw batches with every kind equally likely, or every pair (kinds as often as --train-kinds)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1, help="dropout after the first three ReLUs (training)")
    p.add_argument("--pointwise", type=float, default=0.25, help="weight of the pointwise clean-vs-degraded loss")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--card-only", action="store_true", help="only rewrite README.md of --out from training_log.json")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder for the rendered pairs' embeddings (reused by runs with the same data settings)")
    return p.parse_args(argv)


def build_head(dim: int, widths: list[int], dropout: float) -> torch.nn.Module:
    """``layers``: Linear, ReLU, Dropout ×3, Linear, ReLU, Linear: state-dict keys ``layers.{0,3,6,9,11}.*``."""
    sizes = [dim, *widths, 1]
    mods: list[torch.nn.Module] = []
    for i in range(4):
        mods += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
        if i < 3:
            mods.append(torch.nn.Dropout(dropout))
    mods.append(torch.nn.Linear(sizes[4], 1))
    head = torch.nn.Module()
    head.layers = torch.nn.Sequential(*mods)
    assert [i for i, m in enumerate(head.layers) if isinstance(m, torch.nn.Linear)] == list(LINEAR_INDICES)
    return head


def embedded_pairs(scorer: Any, n: int, seed: int, kinds: tuple[str, ...], cache: Path | None) -> dict[str, np.ndarray]:
    """*n* pairs of *seed* and *kinds* (``demo_degradations.sample_pairs``) as arrays: ``clean`` and ``degraded``
    (N, D) float32 L2-normalised demo CLIP embeddings, ``kind``, ``size`` (render side, px) and ``level`` (severity).
    With a *cache* folder, read from / written to a file named by the data settings and the demo CLIP's hash
    (``cached``: a 0-d bool array, whether it was read from there)."""
    key = json.dumps([n, seed, dd.LEVELS, kinds, dd.sample_pairs.__kwdefaults__["sizes"],
                      scorer.encoder.weights_sha256()], sort_keys=True)
    file = cache / f"pairs-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz" if cache else None
    if file is not None and file.is_file():
        with np.load(file) as z:
            return {**{k: z[k] for k in z.files}, "cached": np.array(True)}
    pairs = dd.sample_pairs(n, seed, kinds=kinds)
    data = {"clean": scorer.embed_images([p.clean for p in pairs]),
            "degraded": scorer.embed_images([p.degraded for p in pairs]),
            "kind": np.array([p.kind for p in pairs]), "size": np.array([p.clean.size[0] for p in pairs]),
            "level": np.array([p.level for p in pairs])}
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, **data)
    return {**data, "cached": np.array(False)}


def train(args: argparse.Namespace, clean: np.ndarray, degraded: np.ndarray, kinds: np.ndarray) -> torch.nn.Module:
    """Fit the head (minibatches with every kind equally likely), then rescale its last layer to the 7 / 3 targets;
    returns it in eval mode."""
    torch.manual_seed(args.seed)
    head = build_head(clean.shape[1], [int(w) for w in args.widths.split(",")], args.dropout)
    c, d = torch.from_numpy(clean), torch.from_numpy(degraded)
    weight = np.array([1.0 / (kinds == k).sum() for k in kinds]) if args.balance == "kinds" else np.ones(len(kinds))
    draw = torch.Generator().manual_seed(args.seed)
    sampler = torch.utils.data.WeightedRandomSampler(weight, args.steps * args.batch_size, generator=draw)
    order = torch.tensor(list(sampler)).view(args.steps, args.batch_size)
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for step in range(args.steps):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        sc, sd = head.layers(c[order[step]])[:, 0], head.layers(d[order[step]])[:, 0]
        loss = F.softplus(sd - sc).mean() + args.pointwise * 0.5 * (F.softplus(-sc) + F.softplus(sd)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "loss": round(loss.item(), 5), "lr": round(lr, 6)}), flush=True)
    head.eval()
    with torch.no_grad():  # means over kinds (not pairs: some kinds have more)
        sc, sd = head.layers(c)[:, 0], head.layers(d)[:, 0]
        mc = float(np.mean([sc[torch.from_numpy(kinds == k)].mean().item() for k in sorted(set(kinds))]))
        md = float(np.mean([sd[torch.from_numpy(kinds == k)].mean().item() for k in sorted(set(kinds))]))
        a = (CLEAN_TARGET - DEGRADED_TARGET) / (mc - md)
        assert a > 0, "the head ranks degraded renders above clean ones on average"
        last = head.layers[LINEAR_INDICES[-1]]
        last.weight.mul_(a)
        last.bias.copy_(a * last.bias + (CLEAN_TARGET - a * mc))
    return head


def state_dict(head: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The head's float32 tensors under the published ``layers.N.weight`` / ``layers.N.bias`` keys."""
    return {k: v.detach().float().contiguous() for k, v in head.state_dict().items()}


def predict(state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Scores (N,) of (N, D) embeddings through the saved tensors (Linear, ReLU except after the last)."""
    out = torch.from_numpy(x)
    for n, i in enumerate(LINEAR_INDICES):
        out = F.linear(out, state[f"layers.{i}.weight"], state[f"layers.{i}.bias"])
        if n < len(LINEAR_INDICES) - 1:
            out = torch.relu(out)
    return out[:, 0].double().numpy()


def wilson_low(k: int, n: int, z: float = 1.96) -> float:
    """Lower end of the 95% Wilson interval of a proportion k / n."""
    if n == 0:
        return float("nan")
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n)


def evaluate(sc: np.ndarray, sd: np.ndarray, kinds: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
    """Pairwise accuracy (clean copy scored higher), its Wilson 95% lower bound, mean scores, and the fraction
    on the right side of 5 (clean > 5, degraded < 5): overall, per kind and per render side."""

    def block(m: np.ndarray) -> dict[str, Any]:
        right = int((sc[m] > sd[m]).sum())
        n = int(m.sum())
        return {"pairs": n, "pairwise_accuracy": right / n, "wilson_low": wilson_low(right, n),
                "mean_clean": float(sc[m].mean()), "mean_degraded": float(sd[m].mean()),
                "threshold_5_accuracy": float(((sc[m] > 5).mean() + (sd[m] < 5).mean()) / 2)}

    out = {"overall": block(np.ones(len(sc), bool))}
    out["per_kind"] = {k: block(kinds == k) for k in dd.KINDS if (kinds == k).any()}
    out["per_size"] = {str(s): block(sizes == s) for s in sorted(set(sizes.tolist()))}
    return out


def write_card(out: Path, info: dict[str, Any]) -> None:
    """The model card ``README.md`` from the training summary *info*."""
    ev, a = info["evaluation"], info["args"]

    def row(label: str, m: dict[str, Any]) -> str:
        return (f"| {label} | {m['pairs']} | {100 * m['pairwise_accuracy']:.1f}% | {100 * m['wilson_low']:.1f}% "
                f"| {m['mean_clean']:.2f} | {m['mean_degraded']:.2f} | {100 * m['threshold_5_accuracy']:.1f}% |")

    levels = {"blur": "Gaussian blur, radius {} to {} input pixels", "noise": "Gaussian noise, std {} to {} (8-bit)",
              "jpeg": "JPEG quality {} to {} at 64 px (8×8 blocks = 1/8 of the side)",
              "contrast": "contrast scaled to {} to {} around the mean grey",
              "cutoff": "one object {} to {} of its bounding radius beyond the border"}
    kinds = "\n".join(f"* `{k}`: {levels[k].format(*dd.LEVELS[k])}" for k in dd.KINDS)
    table = "\n".join([row("**all**", ev["overall"])] + [row(f"`{k}`", m) for k, m in ev["per_kind"].items()]
                      + [row(f"rendered at {s} px", m) for s, m in ev["per_size"].items()])
    widths = " → ".join(str(w) for w in info["widths"])
    weakest = min(ev["per_kind"], key=lambda k: ev["per_kind"][k]["pairwise_accuracy"])
    above = [k for k, m in ev["per_kind"].items() if m["mean_degraded"] > 5]
    mild = (f"Degraded copies of kind {', '.join(f'`{k}`' for k in above)} still average above 5."
            if above else "")
    text = f"""# clipgauge demo aesthetic head

A small aesthetic head for the shipped demo CLIP (`src/clipgauge/demo/model`), so that aesthetic scoring works
offline: `clipgauge score M --model demo --metric clip --metric aesthetic:head=demo` (the backbone of this head
defaults to `demo`; the metric class `clipgauge.metrics.aesthetic.DemoAesthetic`, `demo-aesthetic`, wraps the same
head and writes the column `demo_aesthetic`). `clipgauge demo` shows it beside the CLIP cosine.

It scores how *cleanly* a demo scene is drawn: higher for a crisp render, lower for a blurred, noisy,
JPEG-blocked, washed-out one or one whose object is cut off by the border. Clean renders average
{CLEAN_TARGET:.0f} and degraded ones {DEGRADED_TARGET:.0f} on the training set (means over the kinds).

**It is not a LAION aesthetic predictor**: its scores mean nothing on real images and cannot be compared with
LAION aesthetic scores (v1 or v2), nor with any other head's.

## Format

`head.safetensors`: float32 tensors in the key layout of LAION's `ava+logos-l14-reluMSE.pth` (`v2-relu`):
`layers.{{0,3,6,9,11}}.{{weight,bias}}`, i.e. `nn.Sequential(Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear,
ReLU, Dropout, Linear, ReLU, Linear)` with widths {widths} ({info["parameters"]:,} parameters,
{info["head_bytes"]:,} bytes), so the loader of `--metric aesthetic` reads it unchanged. Input: the L2-normalised
image embedding of the demo CLIP ({info["widths"][0]} wide; `clipgauge.Scorer("demo").embed_images(...)`, or
`CLIPModel.get_image_features` with its `CLIPImageProcessorPil`, divided by its norm). Output: one score per image.

## Data

Clean: random scenes of the demo grammar (`tools/demo_sampling.py`, `clipgauge.demo.scenes`), one or two coloured
shapes, drawn at {", ".join(str(s) for s in dd.sample_pairs.__kwdefaults__["sizes"])} px. Degraded: the same scene
with one degradation (`tools/demo_degradations.py`; severities on the 64-px grid the demo CLIP sees):

{kinds}

Training: {a["train_pairs"]:,} pairs of seed {a["seed"]}, degraded in turn by

    {a["train_kinds"]}

(cut-off objects, the hardest kind for the demo CLIP's embedding, get more pairs); every kind is drawn equally
often into the batches. The settings below were chosen by comparing about a dozen runs on validation pairs of
seed 1 (widths 256 to 1024, 600 to 12,000 steps, dropout, weight decay, loss weights, more cut-off pairs); the
evaluation below was then measured once, on {a["eval_pairs"]:,} pairs of seed {a["eval_seed"]} (kinds equally
often), never trained or tuned on.

## Training

Pairwise logistic ranking loss `softplus(s(degraded) − s(clean))` plus {a["pointwise"]} × a pointwise logistic
loss (clean vs degraded); AdamW, {a["steps"]:,} steps of {a["batch_size"]} pairs (every kind equally likely), learning
rate {a["lr"]} with cosine decay, weight decay {a["weight_decay"]}, dropout {a["dropout"]}. Then the last layer is
rescaled (positive slope: rankings unchanged) so that the training means are {CLEAN_TARGET:.0f} (clean) and
{DEGRADED_TARGET:.0f} (degraded). A linear (v1) head was tried first and does not reach 95% on every kind: on the
demo CLIP's 64-wide embedding the degradations pull in conflicting directions (cut-off objects about 85%).
{info["embed_seconds"]:.0f} s of rendering and embedding{" (read from `--cache`)" if info["cached"] else ""} and
{info["train_seconds"]:.0f} s of training on {info["machine"]} (a machine shared with other work).

```bash
{info["command"]}
```

Everything is seeded: a rerun gives the same tensors (with or without `--cache`).

## Evaluation (held-out renders, seed {a["eval_seed"]})

Pairwise accuracy: the fraction of pairs in which the clean render scores higher than its degraded copy (95%
Wilson lower bound beside it). Threshold accuracy: the mean of P(clean > 5) and P(degraded < 5), across scenes.

| pairs | n | pairwise accuracy | 95% lower bound | mean clean | mean degraded | threshold 5 |
|---|---|---|---|---|---|---|
{table}

`tests/test_demo_aesthetic.py` re-checks ≥ 95% on fresh renders of another seed, with the head computed
independently (safetensors + transformers) and through `clipgauge score`.

## Limitations

* The weakest kind is `{weakest}`: {100 * ev["per_kind"][weakest]["pairwise_accuracy"]:.1f}% (95% lower bound
  {100 * ev["per_kind"][weakest]["wilson_low"]:.1f}%). The demo CLIP was trained to name shapes, not to see where
  they are, so a half-hidden object changes its embedding little; a linear head misses a cut-off object in
  about one pair out of seven.
* Rankings are reliable within a scene (a render against its own degraded copy); absolute scores across scenes
  less so (threshold accuracy above). {mild}
* It was trained and measured only on the five degradations above, at those severities, on demo scenes. Other
  defects (wrong colours, odd layouts) are not what it measures, and prompt adherence is the CLIP cosine's job,
  not its.

Versions: torch {info["versions"]["torch"]}, transformers {info["versions"]["transformers"]}.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def _reproducible(argv: list[str] | None) -> list[str]:
    """The command-line arguments without ``--cache DIR`` (a local speed-up that does not change the result)."""
    args, out = list(sys.argv[1:] if argv is None else argv), []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--cache":
            skip = True
        elif not arg.startswith("--cache="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.card_only:
        write_card(args.out, json.loads((args.out / "training_log.json").read_text(encoding="utf-8")))
        return 0
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    from clipgauge import Scorer

    start = time.perf_counter()
    scorer = Scorer("demo", device="cpu", batch_size=128, num_workers=1)
    tr = embedded_pairs(scorer, args.train_pairs, args.seed, tuple(args.train_kinds.split(",")), args.cache)
    ev = embedded_pairs(scorer, args.eval_pairs, args.eval_seed, dd.KINDS, args.cache)
    embed_seconds = time.perf_counter() - start
    print(json.dumps({"embedded": args.train_pairs + args.eval_pairs, "seconds": round(embed_seconds, 1)}))

    start = time.perf_counter()
    head = train(args, tr["clean"], tr["degraded"], tr["kind"])
    train_seconds = time.perf_counter() - start
    state = state_dict(head)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "head.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})  # one key: several are written in a random order
    path.chmod(0o644)  # package data must be world-readable (safetensors writes 0600)

    from safetensors.torch import load_file

    saved = load_file(str(path))
    evaluation = evaluate(predict(saved, ev["clean"]), predict(saved, ev["degraded"]), ev["kind"], ev["size"])
    training = evaluate(predict(saved, tr["clean"]), predict(saved, tr["degraded"]), tr["kind"], tr["size"])
    info = {
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "cache", "card_only")},
        "command": "python tools/train_demo_aesthetic.py " + " ".join(map(shlex.quote, _reproducible(argv))),
        "widths": [tr["clean"].shape[1], *[int(w) for w in args.widths.split(",")], 1],
        "parameters": sum(v.numel() for v in state.values()),
        "head_bytes": path.stat().st_size,
        "levels": dd.LEVELS,
        "train_seconds": round(train_seconds, 1),
        "embed_seconds": round(embed_seconds, 1),
        "cached": bool(tr["cached"]) or bool(ev["cached"]),
        "machine": f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "evaluation": evaluation,
        "training_set": training,
    }
    write_card(args.out, info)
    (args.out / "training_log.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"overall": evaluation["overall"],
                      "per_kind": {k: round(m["pairwise_accuracy"], 4) for k, m in evaluation["per_kind"].items()}},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Effect of ``--precision bf16`` (and fp16 on a GPU) on CLIP cosines, against fp32, on a *trained* model.

Random weights say little about rounding on real activations, so this uses the shipped demo CLIP (trained
on the procedural scenes of ``clipgauge.demo``): it renders PROMPTS × PER_PROMPT demo images (half follow
their prompt), scores them in fp32 and in each other precision, and prints max / mean |Δcos|, and how often
best-of-N picks a different image. Usage::

    python benchmarks/precision.py --prompts 64 --per-prompt 4 [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parents[1] / "tools"  # demo_sampling: random demo captions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="demo")
    a = ap.parse_args()

    import warnings

    sys.path.insert(0, str(TOOLS))
    from demo_sampling import sample_spec

    from clipgauge import Scorer
    from clipgauge.demo.scenes import DEMO_MODEL_CHANGES, render_examples

    rng = np.random.default_rng(0)
    prompts = [sample_spec(rng).caption for _ in range(a.prompts)]
    examples = render_examples(prompts, per_prompt=a.per_prompt, seed=1, size=128, change=DEMO_MODEL_CHANGES)
    images = [ex.image for ex in examples]
    texts = [ex.prompt for ex in examples]
    precisions = ["fp32", "bf16"] + (["fp16"] if a.device.startswith("cuda") else [])
    cos = {}
    for precision in precisions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scorer = Scorer(a.model, device=a.device, precision=precision)
        t = time.perf_counter()
        cos[precision] = scorer.score(images, texts).astype(np.float64)
        print(f"{precision}: scored {len(images)} pairs in {time.perf_counter() - t:.2f} s")
    best32 = cos["fp32"].reshape(a.prompts, a.per_prompt).argmax(1)
    print(f"\n{a.model}, {len(images)} pairs ({a.prompts} prompts x {a.per_prompt}), device {a.device}; "
          f"fp32 cosines span {cos['fp32'].min():.3f} .. {cos['fp32'].max():.3f}")
    for precision in precisions[1:]:
        d = np.abs(cos[precision] - cos["fp32"])
        best = cos[precision].reshape(a.prompts, a.per_prompt).argmax(1)
        print(f"{precision} vs fp32: max |dcos| {d.max():.2e}, mean {d.mean():.2e}; best-of-{a.per_prompt} "
              f"changes for {int((best != best32).sum())} of {a.prompts} prompts")


if __name__ == "__main__":
    main()

"""What `--long-prompt chunks-mean` costs against the default `truncate`, on one CLIP, in the same run.

Builds a random-weight transformers CLIP of the chosen shape (weights do not change speed; the real CLIP BPE
tokenizer), writes a workload of 512 px JPEGs whose prompts are several PartiPrompts prompts joined as sentences
(most over 77 tokens, so they are split), and times `clipgauge.score` with `long_prompt="truncate"` and
`"chunks-mean"`, interleaved (alternating which goes first), `--repeat` times each (model load included in both;
the medians and the fastest runs are reported with their ratios). It also prints the splitting cost alone (ms per
distinct prompt, tokenizer calls) and the pieces per prompt, and checks that the `cosine` column is the same in
both runs. Usage::

    python benchmarks/long_prompts.py --arch vit-b-32 --prompts 32 --per-prompt 2 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import build_model, make_workload, read_jsonl, read_prompts  # noqa: E402


def long_prompts(n: int, sentences: int) -> list[str]:
    """*n* prompts, each *sentences* PartiPrompts prompts of 10 words or more joined as sentences."""
    pool = [p for p in read_prompts(100_000) if len(p.split()) >= 10]
    if len(pool) < n * sentences:  # no PartiPrompts here: varied stand-ins
        pool = [f"a photo of object number {i}, a {c} {s} on a wooden table next to an open window" for i, (c, s)
                in enumerate(zip(["red", "blue", "green", "small", "large"] * n * sentences,
                                 ["cup", "book", "lamp", "vase", "clock", "plant"] * n * sentences))]
    step = max(1, len(pool) // (n * sentences))
    base = pool[::step][:n * sentences]
    return [" ".join(p.rstrip(".") + "." for p in base[i * sentences:(i + 1) * sentences]) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vit-b-32")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--per-prompt", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "clipgauge-bench")
    a = ap.parse_args()

    from clipgauge.encoders import resolve_encoder
    from clipgauge.metrics.clip_chunks import fits_function
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score
    from clipgauge.scoring.prompt_chunks import split_prompt

    model = build_model(a.arch, a.work / f"model-{a.arch}")
    base = make_workload(a.work / "workload", a.prompts, a.per_prompt)
    prompts = long_prompts(a.prompts, a.sentences)
    rows = read_jsonl(base)
    manifest = a.work / "workload" / f"long_{a.prompts}x{a.per_prompt}x{a.sentences}.jsonl"
    manifest.write_text("".join(json.dumps({**r, "prompt": prompts[r["prompt_id"]]}) + "\n" for r in rows))

    encoder = resolve_encoder(f"hf:{model}")
    fits = fits_function(encoder)
    calls = [0]

    def counted(text: str) -> bool:
        calls[0] += 1
        return fits(text)

    t = time.perf_counter()
    pieces = [split_prompt(p, counted) for p in prompts]
    split_ms = (time.perf_counter() - t) / len(prompts) * 1e3
    n_tokens = [len(encoder.tokenizer(p)["input_ids"]) for p in prompts]

    times: dict[str, list[float]] = {"truncate": [], "chunks-mean": []}
    outs = {}
    for r in range(a.repeat):
        for mode in (list(times) if r % 2 == 0 else list(times)[::-1]):  # alternate which runs first
            out = a.work / f"out-{mode}-{r}.jsonl"
            out.unlink(missing_ok=True)
            t = time.perf_counter()
            score(manifest, out, ScoreOptions(model=f"hf:{model}", device="cpu", long_prompt=mode), resume=False)
            times[mode].append(time.perf_counter() - t)
            outs[mode] = out
    cos = {m: [row["cosine"] for row in read_jsonl(o)] for m, o in outs.items()}
    chunked = [row["chunks_mean_shift"] for row in read_jsonl(outs["chunks-mean"])]
    med = {m: statistics.median(v) for m, v in times.items()}
    n_rows = len(rows)
    print(f"{a.arch}, {n_rows} rows, {len(prompts)} distinct prompts of {min(n_tokens)}-{max(n_tokens)} tokens "
          f"({sum(k > 77 for k in n_tokens)} over 77), {a.repeat} runs each, model load included")
    print(f"splitting: {split_ms:.2f} ms per distinct prompt, {calls[0] / len(prompts):.1f} tokenizer calls, "
          f"{statistics.mean(map(len, pieces)):.2f} pieces per prompt (max {max(map(len, pieces))})")
    for m in times:
        print(f"{m:12s} median {med[m]:.2f} s ({n_rows / med[m]:.1f} rows/s)  runs: "
              + ", ".join(f"{x:.2f}" for x in times[m]))
    best = {m: min(v) for m, v in times.items()}
    print(f"chunks-mean / truncate time: x{med['chunks-mean'] / med['truncate']:.2f} (medians), "
          f"x{best['chunks-mean'] / best['truncate']:.2f} (fastest runs: less sensitive to other jobs)")
    print(f"cosine column identical in both runs: {cos['truncate'] == cos['chunks-mean']}; "
          f"mean |chunks_mean - truncated| = {statistics.mean(abs(x) for x in chunked):.4f} (random weights)")


if __name__ == "__main__":
    main()

"""``clipgauge demo``: render images as a generator would, score them with the shipped demo CLIP and its aesthetic
head, and write every output the other commands write (results, summary, best-of-N choice, HTML report).

Runs offline in well under a minute on a laptop CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Prompts of the demo grammar (shapes × colours, counts, backgrounds, spatial relations).
DEMO_PROMPTS = (
    "a red circle",
    "a photo of a blue square",
    "a green triangle on a white background",
    "two yellow stars",
    "a purple star",
    "an orange circle on a black background",
    "a red circle to the left of a blue star",
    "a white triangle",
)

#: The demo's metrics: CLIP cosine, and the demo aesthetic head (``src/clipgauge/demo/aesthetic``) on the same
#: demo CLIP image embedding (the image is encoded once for both).
DEMO_METRICS = ("clip", "aesthetic:head=demo,model=demo")
#: The result column of the demo aesthetic head (about 7 for a clean render, 3 for a degraded one).
AESTHETIC_COLUMN = "aesthetic"


@dataclass
class DemoResult:
    folder: Path
    manifest: Path
    results: Path
    summary: dict[str, Any]
    report: Path | None
    follow_mean: float
    mismatch_mean: float
    best_of_n_follows: float
    #: mean demo aesthetic score of all images, of those that follow their prompt, and of the mismatched ones
    aesthetic_mean: float
    aesthetic_follow_mean: float
    aesthetic_mismatch_mean: float


def render_demo_set(folder: Path, *, per_prompt: int = 4, seed: int = 0, size: int = 256) -> Path:
    """Render ``per_prompt`` images per demo prompt (half follow it, half deliberately don't) and a manifest."""
    from .scenes import DEMO_MODEL_CHANGES, render_examples

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    # mismatches the demo model can see (it cannot tell left from right: a flipped relation is not one)
    examples = render_examples(list(DEMO_PROMPTS), per_prompt=per_prompt, follow_fraction=0.5, seed=seed, size=size,
                               change=DEMO_MODEL_CHANGES)
    for k, ex in enumerate(examples):
        prompt_id, image_seed = divmod(k, per_prompt)
        name = f"images/p{prompt_id:02d}_s{image_seed}.png"
        ex.image.save(folder / name)
        rows.append(
            {
                "prompt_id": prompt_id,
                "seed": image_seed,
                "image": name,
                "prompt": ex.prompt,
                "follows_prompt": ex.follows,
                "shown": ex.shown,
            }
        )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def run_demo(
    folder: str | Path, *, per_prompt: int = 4, seed: int = 0, device: str = "cpu", report: bool = True
) -> DemoResult:
    """Render, score with the ``demo`` model (CLIP cosine and the demo aesthetic head), and write results, summary
    and (with the extra) the report."""
    from ..pipeline.plan import ScoreOptions
    from ..runs import score
    from ..sinks import read_results

    folder = Path(folder)
    manifest = render_demo_set(folder, per_prompt=per_prompt, seed=seed)
    results = folder / "results.jsonl"
    run = score(manifest, results, ScoreOptions(metrics=list(DEMO_METRICS), model="demo", device=device),
                resume=False)
    records = read_results(results)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    follow = [r["cosine"] for r in records if r["follows_prompt"]]
    mismatch = [r["cosine"] for r in records if not r["follows_prompt"]]
    best: dict[int, dict] = {}
    for r in records:
        if r["prompt_id"] not in best or r["cosine"] > best[r["prompt_id"]]["cosine"]:
            best[r["prompt_id"]] = r
    report_path = None
    if report:
        try:
            from ..report import build_report
        except ImportError:  # the report extra is not installed
            report_path = None
        else:
            report_path = folder / "report.html"
            build_report([results], report_path)
    return DemoResult(
        folder=folder,
        manifest=manifest,
        results=results,
        summary=run.summary,
        report=report_path,
        follow_mean=mean(follow),
        mismatch_mean=mean(mismatch),
        best_of_n_follows=sum(r["follows_prompt"] for r in best.values()) / len(best),
        aesthetic_mean=mean([r[AESTHETIC_COLUMN] for r in records]),
        aesthetic_follow_mean=mean([r[AESTHETIC_COLUMN] for r in records if r["follows_prompt"]]),
        aesthetic_mismatch_mean=mean([r[AESTHETIC_COLUMN] for r in records if not r["follows_prompt"]]),
    )

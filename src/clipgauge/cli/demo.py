"""``clipgauge demo``: the offline quick start, with the CLIP model that ships inside clipgauge."""

from __future__ import annotations

from pathlib import Path

import click

from .options import device_option
from .output import stdout, summary_table


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("clipgauge-demo"), show_default=True,
              help="Folder for the rendered images, manifest, results, summary and report.")
@click.option("--per-prompt", type=click.IntRange(min=2, max=16), default=4, show_default=True,
              help="Images per prompt (half follow the prompt, half deliberately don't).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the renderer.")
@device_option("cpu")
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
def demo(out: Path, per_prompt: int, seed: int, device: str, no_report: bool) -> None:
    """Render images for 8 prompts as an image generator would, score them with the shipped demo CLIP (cosine)
    and its aesthetic head, and write the outputs every other command writes. Offline, under a minute on a CPU.

    The demo CLIP knows only coloured shapes; it is no substitute for a real CLIP on real images.
    """
    from ..demo.run import run_demo

    res = run_demo(out, per_prompt=per_prompt, seed=seed, device=device, report=not no_report)
    stdout.print(summary_table(res.summary, title="clipgauge demo"))
    stdout.print(
        f"images that follow their prompt: mean cosine {res.follow_mean:.3f}; deliberately mismatched: "
        f"{res.mismatch_mean:.3f}; best-of-{per_prompt} picks an image that follows its prompt for "
        f"{100 * res.best_of_n_follows:.0f}% of prompts", markup=False, highlight=False)
    stdout.print(
        f"demo aesthetic (clean renders about 7, blurred, noisy, blocky, washed-out or cut-off ones about 3): mean "
        f"{res.aesthetic_mean:.2f}; images that follow their prompt {res.aesthetic_follow_mean:.2f}, mismatched "
        f"{res.aesthetic_mismatch_mean:.2f}", markup=False, highlight=False)
    stdout.print(f"wrote {res.manifest}, {res.results} (+ .summary.json)"
                 + (f", {res.report}" if res.report else ""), markup=False, highlight=False)
    stdout.print(f"next: clipgauge select {res.results} --group-by prompt_id   |   "
                 f"clipgauge report {res.results} --out report.html", markup=False, highlight=False)

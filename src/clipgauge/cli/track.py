"""``clipgauge track``: add CLIP scores of validation images dumped to disk to a TensorBoard run, after the fact."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..scoring.scales import SCALES
from ..sinks.summary import json_safe
from ..sources import read_manifest
from .options import (
    batch_size_option,
    device_option,
    model_option,
    precision_option,
    prompt_prefix_option,
    trust_remote_code_option,
)
from .output import stderr, stdout

if TYPE_CHECKING:
    from ..track.result import TrackResult


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


@click.command()
@click.argument("logdir", type=click.Path(path_type=Path))
@click.option("--images-dir", "images", required=True, type=click.Path(path_type=Path),
              help="Folder of images with a .txt prompt beside each (or a manifest with image and prompt columns).")
@click.option("--step", required=True, type=click.IntRange(min=0), help="The training step the images belong to.")
@model_option("The CLIP that scores the images")
@device_option()
@batch_size_option("Images per forward pass.")
@precision_option("fp32 is exact; bf16 (CPU/GPU) and fp16 (GPU) are faster.")
@click.option("--scale", type=click.Choice(SCALES), default="cosine", show_default=True,
              help="Scale of the written values: cosine, torchmetrics (100 × cosine), clip-s or angle "
                   "(cosine values plus clip/angle_mean … in degrees, lower is better).")
@prompt_prefix_option()
@click.option("--images/--no-images", "grid", default=True, show_default=True,
              help="Also write a grid of the best and worst images with their prompts.")
@click.option("--per-prompt/--no-per-prompt", default=True, show_default=True,
              help="Also write clip/prompt/NAME, the mean score of each prompt's images.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Also append the values to this CSV file.")
@click.option("--jsonl", "jsonl_path", type=click.Path(path_type=Path),
              help="Also append the evaluation (with every per-image score) to this JSONL file.")
@click.option("--json", "json_output", is_flag=True, help="Print the result as JSON instead of a table.")
@trust_remote_code_option()
@click.option("--metric", "metrics", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help="Also log another metric (repeatable), e.g. aesthetic: its columns as NAME/mean, NAME/min, ….")
@click.option("--reference-stats", type=click.Path(path_type=Path, dir_okay=False), metavar="REF.npz",
              help="Also log clip/cmmd (CMMD to these reference statistics, from 'clipgauge distance "
                   "--save-reference') and clip/vendi (Vendi score of the images).")
def track(logdir: Path, images: Path, step: int, model: str, device: str, batch_size: int, precision: str, scale: str,
          prompt_prefix: str, grid: bool, per_prompt: bool, csv_path: Path | None, jsonl_path: Path | None,
          json_output: bool, trust_remote_code: bool, metrics: tuple[str, ...], reference_stats: Path | None) -> None:
    """Score validation images of one training step and add clip/mean, clip/min, clip/max, clip/std, clip/n
    (and clip/prompt/NAME) at --step to the TensorBoard run in LOGDIR.

    For trainers that only dump validation images to disk: run it once per step folder. A new event file is
    added to LOGDIR, and TensorBoard shows the values with the run's other events. Scores are the same as
    `clipgauge score` gives for the same images.

    Exit status: 0 all images scored, 1 some could not be scored (the rest are written), 2 usage error.
    """
    from ..track import CLIPTracker
    from ..track.prompts import from_prompts
    from ..track.writers import CSVWriter, JSONLWriter
    from ..track.writers.tensorboard import TensorBoardWriter

    rows = read_manifest(images).rows
    good = [r for r in rows if not r.error]
    broken = [r for r in rows if r.error]
    if not good:
        raise UsageError(f"no image in {images} can be scored (first problem: {broken[0].error})")
    writers = [TensorBoardWriter(logdir, images=grid, per_prompt=per_prompt)]
    if csv_path is not None:
        writers.append(CSVWriter(csv_path))
    if jsonl_path is not None:
        writers.append(JSONLWriter(jsonl_path))
    tracker = CLIPTracker(model, prompts=from_prompts([r.prompt for r in good], str(images)), device=device,
                          batch_size=batch_size, precision=precision, scale=scale, prompt_prefix=prompt_prefix,
                          writers=writers, per_prompt=per_prompt, n_extremes=4 if grid else 0,
                          trust_remote_code=trust_remote_code, metrics=metrics, reference_stats=reference_stats)
    try:
        result = tracker.log(step, [r.image for r in good], prompts=[r.prompt for r in good])
    finally:
        for w in writers:
            w.close()
    n_failed = len(broken) + len(result.errors)
    if json_output:
        doc = result.to_dict()
        doc.update(logdir=str(logdir), images=str(images), not_scored=[r.error for r in broken] + result.errors)
        click.echo(json.dumps(json_safe(doc), indent=2, ensure_ascii=False))
    else:
        stdout.print(_table(result, len(rows)))
        stdout.print(f"wrote step {step} to {logdir}", markup=False, highlight=False)
    if n_failed:
        first = broken[0].error if broken else result.errors[0]
        stderr.print(f"clipgauge: {n_failed} of {len(rows)} images could not be scored (first: {first})",
                     markup=False, highlight=False)
        raise click.exceptions.Exit(1)


def _table(result: TrackResult, n_rows: int) -> Group:
    """The summary line, the statistics and the five lowest-scoring prompts, for people."""
    p = result.prefix
    m = result.metrics
    head = Text(f"clipgauge track: step {result.step}, {result.n}/{n_rows} images scored, scale {result.scale}")
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("mean", "std", "min", "max", "n"):
        table.add_column(col, justify="right")
    table.add_row(_fmt(m[f"{p}/mean"]), _fmt(m[f"{p}/std"]), _fmt(m[f"{p}/min"]), _fmt(m[f"{p}/max"]), str(result.n))
    parts: list = [head, table]
    if f"{p}/cmmd" in m:  # --reference-stats
        parts.append(Text(f"{p}/cmmd {_fmt(m[f'{p}/cmmd'])} (to the reference), {p}/vendi {_fmt(m[f'{p}/vendi'], 3)}"))
    worst = sorted((ps for ps in result.per_prompt.values() if ps.scores), key=lambda ps: ps.mean)[:5]
    if len(result.per_prompt) > 1 and worst:
        inner = Table(box=box.SIMPLE_HEAD, title="lowest-scoring prompts", title_justify="left")
        inner.add_column("mean", justify="right")
        inner.add_column("images", justify="right")
        inner.add_column("prompt")
        for ps in worst:
            inner.add_row(_fmt(ps.mean), str(len(ps.scores)), ps.prompt[:80])
        parts.append(inner)
    return Group(*parts)

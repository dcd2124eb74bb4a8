"""``clipgauge classify``: zero-shot classification of every image of an input against a list of labels."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .evalio import check_json_target, emit_json, fmt, json_option, say
from .options import (
    batch_size_option,
    device_option,
    max_image_bytes_option,
    model_option,
    precision_option,
    workers_option,
)


@click.command()
@click.argument("images", type=click.Path(path_type=Path))
@click.option("--labels", default=None, metavar="A,B,...", help="The labels, comma-separated.")
@click.option("--labels-file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="The labels, one per line (for labels that hold commas, or many labels).")
@click.option("--template", "templates", multiple=True, metavar="TEXT",
              help="Prompt template with {} for the label, e.g. 'a photo of a {}.' (repeatable: several are "
                   "averaged as the CLIP paper's normalised ensemble); 'imagenet' = the paper's 80 ImageNet "
                   "templates. Default: the label as written.")
@click.option("--truth", default=None, metavar="COLUMN",
              help="Column with each row's true label: adds accuracy (top-1, top-5), mean per-class recall and "
                   "the confusion table.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many labels the top_labels column lists.")
@model_option("The CLIP that scores the labels")
@click.option("--out", type=click.Path(path_type=Path),
              help="Per-row results: a file (.jsonl, .csv, .tsv, .parquet) or a results folder; resumable.")
@batch_size_option()
@device_option()
@precision_option()
@workers_option()
@max_image_bytes_option()
@click.option("--shard-size", type=click.IntRange(min=1), default=10_000, show_default=True, metavar="N",
              help="Input rows per committed part.")
@click.option("--resume/--no-resume", default=True, show_default=True)
@click.option("--save-embeddings", is_flag=True, help="Also store each image_embedding (float16), for retrieve.")
@click.option("--image-column", default=None, metavar="NAME", help="Parquet/HF input: the image column.")
@json_option
def classify(images: Path, labels: str | None, labels_file: Path | None, templates: tuple[str, ...],
             truth: str | None, top_k: int, model: str, out: Path | None, batch_size: int, device: str,
             precision: str, workers: int | None, max_image_bytes: int, shard_size: int, resume: bool,
             save_embeddings: bool, image_column: str | None, json_out: str | None) -> None:
    """Classify every image zero-shot into --labels (the label with the highest softmax probability over the
    model's logit scale x cosine).

    IMAGES is anything 'clipgauge score' reads: a folder of images (no prompts needed), a manifest with an 'image'
    column, WebDataset or Parquet shards. Each row gets label, probability (in [0, 1]) and top_labels; with
    --truth also true_label, true_rank, true_probability and correct.

    Exit status: 0 every row classified, 1 some rows could not be, 2 usage error.
    """
    from ..pipeline.plan import ScoreOptions
    from ..zeroshot.classify import classify as run_classify
    from ..zeroshot.classify import read_labels

    check_json_target(json_out)
    if (labels is None) == (labels_file is None):
        raise UsageError("give the labels with --labels A,B,... or --labels-file FILE (one of them)")
    label_list = read_labels(labels_file) if labels_file is not None else labels
    options = ScoreOptions(device=device, batch_size=batch_size, precision=precision, num_workers=workers,
                           max_image_bytes=max_image_bytes, save_embeddings=save_embeddings)
    result = run_classify(images, label_list, templates=list(templates) or None, truth=truth, out=out, model=model,
                          top_k=top_k, options=options, shard_size=shard_size, resume=resume,
                          image_column=image_column)
    summary = result.summary
    if emit_json(summary, json_out):
        say(f"clipgauge classify: {summary['scored']}/{summary['rows']} classified, {summary['errors']} errors")
        c = summary.get("classification") or {}
        if "top1" in c:
            say(f"top-1 accuracy {fmt(c['top1'])}, top-5 {fmt(c['top5'])}, mean per-class recall "
                f"{fmt(c['mean_per_class_recall'])} (n={c['n']})")
        counts = sorted(zip(c.get("predicted", []), c.get("labels", [])), reverse=True)[:10]
        if counts:
            say("most predicted: " + ", ".join(f"{lab} ({n})" for n, lab in counts if n))
        if out is not None:
            say(f"wrote {out}")
    if result.n_errors:
        click.echo(f"clipgauge: {result.n_errors} of {summary['rows']} rows could not be classified "
                   f"(first: {result.first_error})", err=True)
        raise click.exceptions.Exit(1)

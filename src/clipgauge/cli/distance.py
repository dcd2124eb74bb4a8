"""``clipgauge distance``: CMMD, FD, KID and Vendi between two image sets, from CLIP image embeddings."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .evalio import check_json_target, emit_json, fmt, json_option, say
from .options import batch_size_option, device_option, model_option, precision_option, workers_option


@click.command()
@click.argument("sides", nargs=-1, metavar="GENERATED REFERENCE")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="cmmd, fd, kid, vendi or all (repeatable or comma-separated; default: all).")
@model_option("The CLIP (default: the model that made stored embeddings or a reference file, else "
              "openai/clip-vit-large-patch14-336, CMMD's)", default=None)
@device_option()
@batch_size_option()
@precision_option()
@workers_option()
@click.option("--preprocess", type=click.Choice(["model", "cmmd"]), default="model", show_default=True,
              help="model: exactly as `score` preprocesses for this model; cmmd: as the CMMD reference code does "
                   "(centred square, bicubic resize to the input size).")
@click.option("--image-column", default=None, metavar="NAME", help="Parquet/HF input: the image column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap and of KID's subsets.")
@click.option("--resamples", type=click.IntRange(min=0), default=100, show_default=True,
              help="Bootstrap resamples of each interval (0: no intervals).")
@click.option("--save-reference", "save_to", type=click.Path(path_type=Path), metavar="REF.npz",
              help="Write reference statistics of the one input given (mean, covariance, a sample of embeddings).")
@json_option
def distance(sides: tuple[str, ...], metrics: tuple[str, ...], model: str | None, device: str, batch_size: int,
             precision: str, workers: int | None, preprocess: str, image_column: str | None, seed: int,
             resamples: int, save_to: Path | None, json_out: str | None) -> None:
    """Distribution distances between GENERATED and REFERENCE images (CMMD, FD, KID; Vendi of each), with bootstrap
    intervals, from the same CLIP image embeddings as the CLIP score.

    Each side is anything `score` reads (folder, manifest, shards, Parquet, HF dataset), a results folder or
    .parquet file scored with --save-embeddings (no image is read again), or a reference-statistics .npz file.
    """
    from ..distribution.run import distance as run_distance
    from ..distribution.run import save_reference

    check_json_target(json_out)
    options = {"model": model, "device": device, "batch_size": batch_size, "precision": precision,
               "workers": workers, "preprocess": preprocess, "image_column": image_column}
    if save_to is not None:
        if len(sides) != 1:
            raise UsageError("--save-reference REF.npz takes one input: clipgauge distance --save-reference "
                             "REF.npz IMAGES")
        doc = save_reference(sides[0], save_to, seed=seed, **options)
        if emit_json(doc, json_out):
            say(f"reference statistics of {doc['n']} images ({doc['dimensions']} dimensions, {doc['model']}) "
                f"written to {doc['path']}; {doc['embeddings_kept']} embeddings kept for CMMD/KID/Vendi"
                + (f"; {doc['n_failed']} rows had no embedding" if doc["n_failed"] else ""))
        return
    if len(sides) != 2:
        raise UsageError("give two inputs: clipgauge distance GENERATED REFERENCE")
    doc = run_distance(sides[0], sides[1], metrics=metrics, seed=seed, resamples=resamples, **options)
    if not emit_json(doc, json_out):
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sides[0]} against {sides[1]} ({doc['model']}; n = {doc['n_generated']} / "
                        f"{doc['n_reference']})", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("metric", "value", "95% CI", "what it is"):
        table.add_column(col, justify="left" if col in ("metric", "what it is") else "right")
    rows = [("cmmd", "cmmd", "cmmd_ci", "squared MMD x1000, RBF sigma 10 (google-research, diagonal kept)"),
            ("cmmd (unbiased)", "cmmd_unbiased", None, "diagonal terms dropped"),
            ("fd", "fd", "fd_ci", "Frechet distance on CLIP features (clean-fid)"),
            ("kid", "kid_mean", "kid_ci", "KID mean (torchmetrics); std " + fmt(doc.get("kid_std"))),
            ("vendi, generated", "vendi_generated", None, "effective number of distinct images"),
            ("vendi, reference", "vendi_reference", None, "effective number of distinct images")]
    for label, key, ci_key, what in rows:
        if key in doc:
            ci = doc.get(ci_key) if ci_key else None
            table.add_row(label, fmt(doc[key]), f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "", what)
    Console().print(table)
    for w in doc["warnings"]:
        say(f"warning: {w}")
    for label in ("generated", "reference"):
        if doc[f"n_failed_{label}"]:
            say(f"{doc[f'n_failed_{label}']} {label} rows had no embedding and were left out")

"""``clipgauge retrieve``: text → image and image → text retrieval by CLIP cosine, with recall@k."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .evalio import check_json_target, emit_json, fmt, json_option, say
from .options import batch_size_option, device_option, model_option, precision_option


@click.command()
@click.argument("gallery", required=False, type=click.Path(path_type=Path))
@click.option("--query", "queries", multiple=True, metavar="TEXT", help="A text to find images for (repeatable).")
@click.option("--queries", "queries_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Texts to find images for, one per line.")
@click.option("--image", "images", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="An image to find captions for, among --captions (repeatable).")
@click.option("--captions", "captions_file", type=click.Path(path_type=Path), metavar="FILE",
              help="The captions --image searches, one per line.")
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Results per query.")
@click.option("--evaluate", is_flag=True,
              help="recall@1/5/10 in both directions over GALLERY, each row's prompt its true caption "
                   "(CLIP_benchmark's definition).")
@model_option("The CLIP (default: the model that stored GALLERY's embeddings, else the default model)", default=None)
@batch_size_option()
@device_option()
@precision_option()
@click.option("--image-column", default=None, metavar="NAME", help="Parquet/HF input: the image column.")
@click.option("--prompt-column", default=None, metavar="NAME", help="Parquet/HF input: the caption column.")
@click.option("--report", "report_out", type=click.Path(path_type=Path), metavar="FILE.html",
              help="Write an HTML page with the top-k thumbnails of every query (and the recall table).")
@json_option
def retrieve(gallery: Path | None, queries: tuple[str, ...], queries_file: Path | None, images: tuple[Path, ...],
             captions_file: Path | None, k: int, evaluate: bool, model: str | None, batch_size: int, device: str,
             precision: str, image_column: str | None, prompt_column: str | None, report_out: Path | None,
             json_out: str | None) -> None:
    """Find the images that best match a text, or the captions that best match an image, by CLIP cosine.

    GALLERY is an image input (folder, manifest, shards) encoded as it is read, or a results folder / .parquet
    results file scored with --save-embeddings, whose stored embeddings are used as they are (another --model is
    refused). Memory stays bounded: each query keeps a running top-k.
    """
    from ..zeroshot.retrieve import retrieve as run_retrieve
    from ..zeroshot.textfile import read_lines

    check_json_target(json_out)
    texts = list(queries) + (read_lines(queries_file, "queries") if queries_file is not None else [])
    captions = read_lines(captions_file, "captions") if captions_file is not None else None
    if captions is not None and not images:
        raise UsageError("--captions is searched by --image queries: give at least one --image PATH")
    result = run_retrieve(gallery, queries=texts, images=list(images), captions=captions, k=k, model=model,
                          evaluate=evaluate, device=device, batch_size=batch_size, precision=precision,
                          image_column=image_column, prompt_column=prompt_column)
    document = result.to_dict()
    if report_out is not None:
        from ..report.retrieval import write_retrieval_report

        write_retrieval_report(document, report_out)
    if emit_json(document, json_out):
        for q in result.queries:
            say(f"{q['direction'].replace('_', ' ')}: {q['query']}")
            for r in q["results"]:
                what = r.get("image") or r.get("text")
                say(f"  {r['rank']:>3}  {fmt(r['cosine'])}  {what}")
        if result.recall:
            for direction in ("text_to_image", "image_to_text"):
                say(f"{direction.replace('_', ' ')} recall@k: " + ", ".join(
                    f"@{key} {fmt(v)}" for key, v in result.recall[direction].items()))
        info = result.gallery
        if info.get("kind") == "stored":
            say(f"gallery: {info['rows']} stored embeddings of {info.get('model')} in {info.get('path')}, "
                "used as stored")
        if info.get("unusable_rows"):
            say(f"{info['unusable_rows']} of {info['rows']} gallery rows have no image embedding "
                f"(first: {info['first_error']})")
        if report_out is not None:
            say(f"wrote {report_out}")

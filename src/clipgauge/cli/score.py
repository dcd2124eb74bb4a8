"""``clipgauge score``: score an input (manifest, image folder, shards) into a results file or folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..engines import ENGINES, RayOptions
from ..errors import RowError
from ..pipeline.plan import ScoreOptions
from ..runs import score as run_score
from ..scoring.scales import SCALES
from ..sinks.sharded import SUMMARY_FILE, is_folder_output
from ..sinks.summary import json_safe, summary_path
from .options import (
    batch_size_option,
    device_option,
    max_image_bytes_option,
    model_option,
    precision_option,
    prompt_prefix_option,
    trust_remote_code_option,
    workers_option,
)
from .output import progress_bar, stderr, stdout, summary_table
from .process import allow_fast_exit


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@model_option("The model of every metric that is not given model=")
@click.option("--metric", "metrics", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help="A metric to compute (repeatable; default: clip). See 'clipgauge metrics' for the metrics and "
                   "their options, e.g. --metric clip:model=hf:/path/to/folder,scale=clip-s.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Per-row results: a file (.jsonl, .csv, .tsv, .parquet or another registered format; the summary "
                   "goes to OUT.summary.json) or a folder of Parquet parts (a path without extension). Both resume "
                   "after a crash.")
@batch_size_option("Images per forward pass (never changes the scores).")
@device_option()
@click.option("--scale", type=click.Choice(SCALES), default="cosine", show_default=True,
              help="Scale of the clip metric's 'score' column; 'cosine' is always written too.")
@precision_option("fp32 is exact; bf16 (CPU/GPU) and fp16 (GPU) are faster.")
@prompt_prefix_option()
@workers_option()
@click.option("--reference-image", metavar="COLUMN",
              help="Column of reference image paths: adds clip_i, the image-image cosine (CLIP-I).")
@click.option("--reference-text", metavar="COLUMN",
              help="Column of reference captions (text or list): adds ref_cosine and refclip_s (RefCLIP-S).")
@click.option("--embedding-cache", type=click.Path(path_type=Path), metavar="DIR",
              help="Keep image/prompt embeddings in DIR so re-scoring does not re-encode (keyed by weights, "
                   "preprocessing, precision and exact content).")
@click.option("--fast-decode", is_flag=True,
              help="Decode JPEGs at reduced DCT scale (faster, not exact; see benchmarks/RESULTS.md).")
@click.option("--decode", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="cpu: exact (Pillow, worker threads). gpu: JPEGs decoded, resized and cropped on the model's "
                   "device (nvJPEG on CUDA); not exact (deviation measured, in provenance); other images take the "
                   "exact path, with the reason counted in provenance.")
@max_image_bytes_option()
@click.option("--strict", is_flag=True, help="Stop at the first row that cannot be scored (exit 1).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: this process. ray: Ray Data, a pool of scoring actors (needs clipgauge[ray]).")
@click.option("--address", default=None, metavar="ADDR",
              help="Ray cluster to join (auto, ray://HOST:10001); default: RAY_ADDRESS, else a local instance.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Ray scoring actors, one model each (default: one per GPU, else 1). --workers stays the "
                   "decode threads of each.")
@click.option("--num-gpus-per-worker", type=click.FloatRange(min=0), default=None, metavar="G",
              help="GPUs per Ray actor (default: 1 when the cluster has GPUs, else 0).")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="C",
              help="CPUs reserved per Ray actor.")
@click.option("--shard-size", type=click.IntRange(min=1), default=10_000, show_default=True, metavar="N",
              help="Input rows per committed part; part k always holds rows [k*N, (k+1)*N). A file --out keeps "
                   "its parts in a hidden folder beside it until the run ends.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue a compatible run into the same --out (skip committed parts); --no-resume "
                   "deletes that run's parts and starts over.")
@click.option("--save-embeddings", is_flag=True,
              help="Also store the image_embedding and text_embedding (float16) of the first metric's model.")
@click.option("--image-column", default=None, metavar="NAME",
              help="Parquet/HF input: the image column (default: image, jpg, jpeg, png, webp or img).")
@click.option("--prompt-column", default=None, metavar="NAME",
              help="Parquet/HF input: the caption column (default: prompt, caption, txt or text); WebDataset: "
                   "a member extension or .json field.")
@click.option("--long-prompt", type=click.Choice(["truncate", "chunks-mean", "chunks-max"]), default="truncate",
              show_default=True,
              help="Prompts longer than the model's text context: truncate (the CLIP score, always written); "
                   "chunks-mean / chunks-max also score them in context-sized pieces split at sentence and clause "
                   "boundaries (metric clip_chunks, its own columns: not the CLIP score).")
@click.option("--language/--no-language", default=True, show_default=True,
              help="Add each prompt's language (columns language, language_confidence; rows per language in the "
                   "summary; a warning when an English-only model scores other languages).")
@click.option("--json", "json_output", is_flag=True, help="Print the summary as JSON instead of a table.")
@trust_remote_code_option()
def score(manifest: Path, model: str, metrics: tuple[str, ...], out: Path | None, batch_size: int, device: str,
          scale: str, precision: str, prompt_prefix: str, workers: int | None, reference_image: str | None,
          reference_text: str | None, embedding_cache: Path | None, fast_decode: bool, decode: str,
          max_image_bytes: int, strict: bool,
          json_output: bool, trust_remote_code: bool, engine: str, address: str | None, ray_workers: int | None,
          num_gpus_per_worker: float | None, cpus_per_worker: float, shard_size: int, resume: bool,
          language: bool,
          save_embeddings: bool, image_column: str | None, prompt_column: str | None, long_prompt: str) -> None:
    """Score how well each image follows its prompt (CLIP cosine similarity, and any other --metric).

    MANIFEST is a JSONL/CSV/TSV/Parquet file with 'image' and 'prompt' columns (image paths relative to the
    manifest's folder), a folder of images with a .txt prompt beside each, WebDataset tar shards
    ('shards/{00000..00999}.tar'), Parquet files with image bytes or paths, or a Hugging Face dataset saved to
    disk. Every input row is written to --out, in order, with the metrics' columns (for clip: score, cosine,
    truncated) and error. The default model is openai/clip-vit-large-patch14, the one torchmetrics uses.

    --out FILE writes one results file; --out DIR (a folder, or a path without extension) writes
    DIR/part-NNNNN.parquet, one part per --shard-size input rows. Either way parts are committed atomically as
    the run goes, so re-running the same command after a crash finishes the run (every row exactly once).

    Exit status: 0 all rows scored, 1 some rows could not be scored, 2 usage or configuration error.
    """
    chosen = list(metrics) or ["clip"]
    if reference_image:
        chosen.append(f"clip_i:column={reference_image}")
    if reference_text:
        chosen.append(f"refclip_s:column={reference_text}")
    options = ScoreOptions(metrics=chosen, model=model, scale=scale, device=device, batch_size=batch_size,
                           precision=precision, num_workers=workers, prompt_prefix=prompt_prefix,
                           trust_remote_code=trust_remote_code, cache_dir=embedding_cache, fast_decode=fast_decode,
                           decode=decode, max_image_bytes=max_image_bytes, save_embeddings=save_embeddings,
                           strict=strict, long_prompt=long_prompt)
    options = options.with_(language=language)  # --no-language: no language columns, counts or warning
    ray = RayOptions(address=address, workers=ray_workers, gpus_per_worker=num_gpus_per_worker,
                     cpus_per_worker=cpus_per_worker)
    bars = []

    def progress(total: int | None):
        bar = progress_bar(total, "scoring")
        bars.append(bar)
        return bar.__enter__()

    try:
        result = run_score(manifest, out, options, engine=engine, shard_size=shard_size, resume=resume,
                           image_column=image_column, prompt_column=prompt_column, ray=ray, progress=progress)
    except RowError as exc:
        where = f"row {exc.index + 1}: " if exc.index is not None else ""
        stderr.print(f"clipgauge: stopped (--strict) at {where}{exc.reason}", markup=False, highlight=False)
        raise click.exceptions.Exit(1) from None
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    if engine == "local":
        allow_fast_exit()  # everything is written and closed; Ray shuts its workers down at exit, so only local
    wrote = None
    if out is not None and is_folder_output(out):
        how = f"resumed: {result.shards_written} new parts" if result.resumed else f"{result.shards_written} parts"
        wrote = f"wrote {out} ({how}; summary in {SUMMARY_FILE})"
    elif out is not None:
        wrote = f"wrote {out} and {summary_path(out)}" + (
            f" (resumed: {result.shards_written} new parts)" if result.resumed else "")
    _finish(result.summary, wrote, result.n_errors, result.first_error, json_output)


def _finish(summary: dict, wrote: str | None, n_errors: int, first_error: str | None, json_output: bool) -> None:
    """Print the summary (table or JSON) and exit 1 when some rows could not be scored."""
    if json_output:
        click.echo(json.dumps(json_safe(summary), indent=2))
    else:
        stdout.print(summary_table(summary))
        if wrote:
            stdout.print(wrote, markup=False, highlight=False)
    if n_errors:
        stderr.print(f"clipgauge: {n_errors} of {summary['rows']} rows could not be scored (first: {first_error})",
                     markup=False, highlight=False)
        raise click.exceptions.Exit(1)

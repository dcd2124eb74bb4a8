"""``clipgauge score``: score a manifest or an image folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from ..errors import RowError
from ..runs import score_manifest
from ..scoring.device import PRECISIONS
from ..scoring.scales import SCALES
from ..scoring.scorer import Scorer
from ..sinks import summary_path, write_results, write_summary
from ..sinks.results import results_format
from ..sinks.summary import json_safe
from ..sources import read_manifest
from .output import progress_bar, stderr, stdout, summary_table


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="A Hugging Face id or hf:DIR, open_clip:ARCH:PRETRAINED, open_clip:hf-hub:ORG/NAME, or demo.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Per-row results (.jsonl, .csv, .tsv or .parquet); the summary goes to OUT.summary.json.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per forward pass (never changes the scores).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--scale", type=click.Choice(SCALES), default="cosine", show_default=True,
              help="Scale of the 'score' column; 'cosine' is always written too.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp32 is exact; bf16 (CPU/GPU) and fp16 (GPU) are faster.")
@click.option("--prompt-prefix", default="", help="Text put before every prompt, e.g. 'a photo of '.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Threads that decode images (default: CPU count, at most 8).")
@click.option("--reference-image", metavar="COLUMN",
              help="Column of reference image paths: adds clip_i, the image-image cosine (CLIP-I).")
@click.option("--reference-text", metavar="COLUMN",
              help="Column of reference captions (text or list): adds ref_cosine and refclip_s (RefCLIP-S).")
@click.option("--embedding-cache", type=click.Path(path_type=Path), metavar="DIR",
              help="Keep image/prompt embeddings in DIR so re-scoring does not re-encode (keyed by weights, "
                   "preprocessing, precision and exact content).")
@click.option("--fast-decode", is_flag=True,
              help="Decode JPEGs at reduced DCT scale (faster, not exact; see benchmarks/RESULTS.md).")
@click.option("--strict", is_flag=True, help="Stop at the first row that cannot be scored (exit 1).")
@click.option("--json", "json_output", is_flag=True, help="Print the summary as JSON instead of a table.")
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the hub (off by default).")
def score(manifest: Path, model: str, out: Path | None, batch_size: int, device: str, scale: str, precision: str,
          prompt_prefix: str, workers: int | None, reference_image: str | None, reference_text: str | None,
          embedding_cache: Path | None, fast_decode: bool, strict: bool, json_output: bool,
          trust_remote_code: bool) -> None:
    """Score how well each image follows its prompt (CLIP cosine similarity).

    MANIFEST is a JSONL/CSV/TSV/Parquet file with 'image' and 'prompt' columns (image paths relative to the
    manifest's folder), or a folder of images with a .txt prompt beside each. Every input row is written
    to --out, in order, with score, cosine, truncated and error. The default model is
    openai/clip-vit-large-patch14, the one torchmetrics uses.

    Exit status: 0 all rows scored, 1 some rows could not be scored, 2 usage or configuration error.
    """
    if out is not None:
        results_format(out)
    rows = read_manifest(manifest)
    scorer = Scorer(model, device=device, batch_size=batch_size, precision=precision,
                    num_workers=workers, prompt_prefix=prompt_prefix, trust_remote_code=trust_remote_code,
                    cache_dir=embedding_cache, fast_decode=fast_decode)
    try:
        with progress_bar(len(rows), "scoring") as update:
            run = score_manifest(rows, scorer, scale=scale, strict=strict, progress=update,
                                 reference_image=reference_image, reference_text=reference_text)
    except RowError as exc:
        where = f"row {exc.index + 1}: " if exc.index is not None else ""
        stderr.print(f"clipgauge: stopped (--strict) at {where}{exc.reason}", markup=False, highlight=False)
        raise click.exceptions.Exit(1) from None
    if out is not None:
        write_results(out, run.records, run.columns)
        write_summary(summary_path(out), run.summary)
    if json_output:
        click.echo(json.dumps(json_safe(run.summary), indent=2))
    else:
        stdout.print(summary_table(run.summary))
        if out is not None:
            stdout.print(f"wrote {out} and {summary_path(out)}", markup=False, highlight=False)
    if run.n_errors:
        first = next(r for r in run.records if r["error"])
        stderr.print(f"clipgauge: {run.n_errors} of {len(run.records)} rows could not be scored "
                     f"(first: {first['error']})", markup=False, highlight=False)
        raise click.exceptions.Exit(1)

"""``clipgauge prompts``: write a generation manifest from a benchmark prompt set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..sinks import write_results
from ..sinks.results import results_format
from ..sources.promptsets import PROMPT_SETS, cache_dir, generation_manifest, load_prompt_set
from .evalio import check_json_target, emit_json, json_option, say
from .output import stdout


def _split(values: tuple[str, ...]) -> list[str]:
    return [v for item in values for v in item.split(",") if v.strip()]


@click.command()
@click.argument("name", type=click.Choice(sorted(PROMPT_SETS), case_sensitive=False))
@click.option("--category", multiple=True, metavar="C",
              help="Keep only this category (repeatable or comma-separated; case-insensitive).")
@click.option("--challenge", multiple=True, metavar="C", help="Keep only this challenge (PartiPrompts).")
@click.option("--repeat", type=click.IntRange(min=1), default=None, metavar="N",
              help="N rows per prompt with seed 0..N-1 (one image each).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the manifest (.jsonl/.csv/.tsv/.parquet): prompt_id, prompt, category, challenge[, seed].")
@click.option("--file", "file_", type=click.Path(path_type=Path), metavar="PATH",
              help="Read a local copy of the prompt set instead of the cached download.")
@click.option("--sha256", default=None, metavar="HEX", help="Require this SHA-256 of the prompt-set file.")
@json_option
def prompts(name: str, category: tuple[str, ...], challenge: tuple[str, ...], repeat: int | None, out: Path | None,
            file_: Path | None, sha256: str | None, json_out: str | None) -> None:
    """Write a generation manifest for PartiPrompts (parti) or DrawBench (drawbench).

    Each row has prompt_id, prompt, category, challenge (PartiPrompts) and, with --repeat, seed; a generator
    adds an 'image' column and 'clipgauge score' scores it. The prompt set is downloaded from its public
    source on first use, checked (PartiPrompts against a pinned SHA-256; DrawBench, which publishes none,
    by its shape, then against the SHA-256 recorded at first download) and cached in $CLIPGAUGE_CACHE or
    $XDG_CACHE_HOME/clipgauge. Without network, pass a local copy with --file.
    """
    check_json_target(json_out)
    if out is not None:
        results_format(out)
    prompt_set = load_prompt_set(name, file=file_, sha256=sha256)
    rows, columns = generation_manifest(prompt_set, categories=_split(category), challenges=_split(challenge),
                                        repeat=repeat)
    if out is not None:
        write_results(out, rows, columns)
    n_prompts = len({r["prompt_id"] for r in rows})
    by_category = Counter(r["category"] for r in rows if "seed" not in r or r["seed"] == 0)
    doc = {
        "set": prompt_set.source.title, "source": str(prompt_set.path), "url": prompt_set.source.url,
        "sha256": prompt_set.sha256, "verification": prompt_set.verification, "licence": prompt_set.source.licence,
        "prompts": n_prompts, "rows": len(rows), "repeat": repeat, "columns": columns,
        "by_category": dict(sorted(by_category.items())), "out": str(out) if out else None,
    }
    if emit_json(doc, json_out):
        table = Table(title=f"{prompt_set.source.title}: {n_prompts} prompts, {len(rows)} rows", title_justify="left",
                      box=box.SIMPLE_HEAD)
        table.add_column("category")
        table.add_column("prompts", justify="right")
        for cat, n in sorted(by_category.items()):
            table.add_row(str(cat), str(n))
        stdout.print(table)
        say(f"source: {prompt_set.path} (sha256 {prompt_set.sha256[:16]}…; {prompt_set.verification})")
        say(f"wrote {out}" if out else f"no --out given: nothing written (cache: {cache_dir()})")

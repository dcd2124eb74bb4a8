"""``clipgauge validate``: how well does a metric agree with human judgement?"""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..pipeline.plan import ScoreOptions
from ..scoring.scales import SCALES
from ..stats.agreement import N_RESAMPLES
from .evalio import check_json_target, emit_json, fmt, json_option, say
from .options import batch_size_option, device_option, model_option, prompt_prefix_option
from .output import stdout

#: the CLIPScore paper's caption prefix (clipscore.py, CLIPCapDataset), for candidates and references alike
FLICKR8K_PREFIX = "A photo depicts "
_LABELS = {"kendall_tau_b": "Kendall τ-b", "kendall_tau_c": "Kendall τ-c", "spearman": "Spearman ρ",
           "pairwise_accuracy": "pairwise accuracy"}


@click.command()
@click.argument("judgements", type=click.Path(path_type=Path))
@click.option("--metric", default=None, metavar="NAME[:KEY=VALUE,...]",
              help="The clipgauge metric to validate (default: clip): clip, refclip_s, pickscore, aesthetic, …")
@click.option("--column", default=None, metavar="NAME",
              help="Read this precomputed score column instead of running a metric (pairwise files: NAME_0, "
                   "NAME_1).")
@model_option("The CLIP of the metric")
@click.option("--scale", type=click.Choice(SCALES), default=None,
              help="Scale of the clip metric [default: clip-s for Flickr8K files, as the CLIPScore paper; else "
                   "cosine].")
@prompt_prefix_option("Text put before every caption and reference [default: 'A photo depicts ' for Flickr8K "
                      "files, as the CLIPScore paper's code; else none].", default=None, metavar="TEXT")
@click.option("--image-root", type=click.Path(path_type=Path, file_okay=False),
              help="Folder relative image paths are relative to [default: the judgement file's folder].")
@click.option("--tie-threshold", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Pairwise files: the metric calls a tie when |score_0 - score_1| <= this.")
@click.option("--scores-out", type=click.Path(path_type=Path), help="Keep the per-image results in this file.")
@click.option("--report", "report_out", type=click.Path(path_type=Path), metavar="HTML",
              help="Write an HTML page with the statistics, their CIs and the published numbers.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the bootstrap intervals.")
@click.option("--resamples", type=click.IntRange(min=10), default=N_RESAMPLES, show_default=True,
              help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the bootstrap.")
@device_option()
@batch_size_option("Images per forward pass.")
@json_option
def validate(judgements: Path, metric: str | None, column: str | None, model: str, scale: str | None,
             prompt_prefix: str | None, image_root: Path | None, tie_threshold: float, scores_out: Path | None,
             report_out: Path | None, confidence: float, resamples: int, seed: int, device: str, batch_size: int,
             json_out: str | None) -> None:
    """Measure how well a metric agrees with human judgement, with bootstrap CIs.

    JUDGEMENTS is the CLIPScore paper's Flickr8K-Expert/CF JSON (flickr8k.json, crowdflower_flickr8k.json),
    a pairwise preference table (Pick-a-Pic: caption, jpg_0/image_0, jpg_1/image_1, label_0; or HPDv2's
    test.json), or a table with image, prompt and human columns. Prints Kendall τ-b and τ-c (scipy, as the
    CLIPScore paper), Spearman ρ and, for pairs, pairwise accuracy (ties: Pick-a-Pic's half credit), each
    with its CI, beside the published numbers of the benchmark the file looks like.
    """
    check_json_target(json_out)
    from ..errors import UsageError
    from ..sources.judgements import read_judgements
    from ..validation import validate as run_validate

    if metric is not None and column is not None:
        raise UsageError("give --metric or --column, not both")
    flickr8k = read_judgements(judgements, image_root=image_root).format == "flickr8k"
    if scale is None:  # the CLIPScore paper's settings for its benchmark
        scale = "clip-s" if flickr8k else "cosine"
    if prompt_prefix is None:
        prompt_prefix = FLICKR8K_PREFIX if flickr8k else ""
    options = ScoreOptions(model=model, scale=scale, device=device, batch_size=batch_size,
                           prompt_prefix=prompt_prefix)
    result = run_validate(judgements, metric=metric or "clip", column=column, options=options,
                          image_root=image_root, scores_out=scores_out, tie_threshold=tie_threshold,
                          confidence=confidence, n_resamples=resamples, seed=seed)
    doc = result.to_dict()
    if report_out is not None:
        from ..report.evaluation import validation_report

        validation_report(doc, report_out)
        doc["report"] = str(report_out)
    if not emit_json(doc, json_out):
        return
    table = Table(title=f"{doc['benchmark'] or doc['format']}: {doc['metric'] or doc['column']} against people "
                        f"({doc['n']} judged, {doc['left_out']} left out)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in ("statistic", "measured", f"{round(100 * confidence)}% CI", "published"):
        table.add_column(col, justify="left" if col == "statistic" else "right")
    published = {p["statistic"]: p for p in doc["published"] if p["matches"]}
    for key, label in _LABELS.items():
        if doc.get(key) is None:
            continue
        low, high = doc[f"{key}_ci"] or (None, None)
        p = published.get(key)
        table.add_row(label, fmt(doc[key]), f"[{fmt(low)}, {fmt(high)}]",
                      f"{p['value']:.3f} ({p['metric']}, {p['model']})" if p else "")
    stdout.print(table)
    others = [p for p in doc["published"] if not p["matches"]]
    for p in others:
        say(f"published on {p['benchmark']}: {p['metric']} {_LABELS[p['statistic']]} {p['value']:.3f} ({p['source']})")
    if doc["errors"]:
        say(f"{doc['errors']} images could not be scored (first: {doc['first_error']}); their judgements are left out")
    if report_out is not None:
        say(f"wrote {report_out}")

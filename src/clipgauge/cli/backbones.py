"""``clipgauge backbones``: score the same rows with several CLIPs in one run and compare them."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..pipeline.plan import ScoreOptions
from .evalio import check_json_target, emit_json, fmt, json_option, say
from .options import batch_size_option, device_option, model_option, precision_option
from .output import stdout


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@model_option("A CLIP to compare (repeat: --model A --model B [--model C …])", multiple=True, required=True,
              dest="models", metavar="SPEC")
@click.option("--system-column", metavar="COLUMN",
              help="Column naming the generator or run of each row: adds each backbone's system ranking, Kendall "
                   "τ between rankings and the share of system pairs whose sign all backbones agree on.")
@click.option("--labels-file", type=click.Path(path_type=Path), metavar="FILE",
              help="Labels, one a line: adds each backbone's zero-shot accuracy (needs --truth).")
@click.option("--truth", metavar="COLUMN", help="Column with each row's true label (with --labels-file).")
@click.option("--template", "templates", multiple=True, metavar="TEXT",
              help="Zero-shot prompt template with {} for the label (repeatable; 'imagenet' = the CLIP paper's 80).")
@click.option("--recall", is_flag=True,
              help="Add each backbone's recall@k in both directions, each row's prompt its true caption.")
@click.option("--robustness", is_flag=True,
              help="Add each backbone's score drift and rank stability (and with --truth zero-shot top-1 and mCE) "
                   "under 5 ImageNet-C corruptions at 5 severities (noise, blur, JPEG, contrast, pixelate).")
@click.option("--linear-probe", "linear_probe", metavar="COLUMN",
              help="Column of class labels: add CLIP_benchmark's linear probe (1/2/4/8/16-shot and full data) per "
                   "backbone beside its zero-shot top-1 on the same test rows.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the corruptions' noise and of the linear probe's splits and k-shot draws.")
@click.option("--top", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rows the backbones disagree on most to show.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Keep the per-row results (one cosine_bK column per backbone) in this file.")
@click.option("--report", "report_out", type=click.Path(path_type=Path), metavar="HTML",
              help="Write an HTML page: speed, correlations, system agreement, disagreement rows with images.")
@device_option()
@batch_size_option("Images per forward pass.")
@precision_option("Precision of every backbone.")
@click.option("--image-column", default=None, metavar="NAME", help="Parquet/HF input: the image column.")
@click.option("--prompt-column", default=None, metavar="NAME", help="Parquet/HF input: the caption column.")
@json_option
def backbones(manifest: Path, models: tuple[str, ...], system_column: str | None, labels_file: Path | None,
              truth: str | None, templates: tuple[str, ...], recall: bool, robustness: bool,
              linear_probe: str | None, seed: int, top: int, out: Path | None,
              report_out: Path | None, device: str, batch_size: int, precision: str, image_column: str | None,
              prompt_column: str | None, json_out: str | None) -> None:
    """Compare CLIP backbones on your own data ("CLIP Benchmark" for a manifest).

    Scores MANIFEST (any input 'clipgauge score' reads) with every --model in one run: each image is decoded
    once and every backbone sees the same rows. Prints per backbone the images/s of its embedding, load time
    and memory (measured in this run), per pair of backbones Spearman ρ and Kendall τ-b of the per-row cosines,
    with --system-column the agreement on system rankings, and the rows they disagree on most.
    """
    check_json_target(json_out)
    from ..backbones import compare_backbones

    labels = None
    if labels_file is not None:
        from ..zeroshot.classify import read_labels

        labels = read_labels(labels_file)
    options = ScoreOptions(device=device, batch_size=batch_size, precision=precision)
    result = compare_backbones(manifest, list(models), options=options, out=out, system_column=system_column,
                               top=top, image_column=image_column, prompt_column=prompt_column, labels=labels,
                               truth=truth, templates=list(templates) or None, recall=recall,
                               robustness=robustness, linear_probe=linear_probe, seed=seed)
    doc = result.to_dict()
    if report_out is not None:
        from ..report.evaluation import backbones_report

        backbones_report(doc, report_out)
        doc["report"] = str(report_out)
    if not emit_json(doc, json_out):
        return
    _print(doc)
    if report_out is not None:
        say(f"wrote {report_out}")


def _print(doc: dict) -> None:
    speed = Table(title=f"backbones on {doc['input']} ({doc['rows']} rows, {doc['errors']} not scored)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("", "model", "scored", "mean cosine", "images/s", "load s", "weights MB", "peak MB"):
        speed.add_column(col, justify="left" if col in ("", "model") else "right")
    for b in doc["backbones"]:
        t = b.get("timing") or {}
        speed.add_row(b["name"], b["model"], str(b["scored"]), fmt(b["mean"]), fmt(t.get("images_per_s"), 1),
                      fmt(t.get("load_s"), 2), _mb(t.get("weights_bytes")), _mb(t.get("peak_bytes")))
    stdout.print(speed)
    for b in doc["backbones"]:
        if b.get("zeroshot"):
            z = b["zeroshot"]
            say(f"{b['name']} zero-shot: top-1 {fmt(z['top1'])}, top-5 {fmt(z['top5'])}, mean per-class recall "
                f"{fmt(z['mean_per_class_recall'])} over {z['n']} rows")
        if b.get("recall"):
            say(f"{b['name']} recall@k: {_recall(b['recall'])}")
    corr = Table(title="agreement of per-row cosines", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("pair", "rows", "Spearman ρ", "Kendall τ-b"):
        corr.add_column(col, justify="left" if col == "pair" else "right")
    for c in doc["correlations"]:
        corr.add_row(f"{c['a']} vs {c['b']}", str(c["n"]), fmt(c["spearman"]), fmt(c["kendall_tau_b"]))
    stdout.print(corr)
    systems = doc.get("systems")
    if systems:
        for t in systems["ranking_tau"]:
            say(f"system ranking {t['a']} vs {t['b']}: Kendall τ-b {fmt(t['kendall_tau_b'])} "
                f"over {t['systems']} systems")
        share = systems["sign_agreement"]
        say(f"all backbones agree on the sign of {fmt(share, 3)} of {systems['system_pairs']} system pairs")
    for d in doc["disagreements"][:5]:
        cos = ", ".join(f"{k} {v:.3f}" for k, v in d["cosines"].items())
        say(f"disagree: row {d['index']} (spread {d['spread']:.2f}) {d['prompt']!r}: {cos}")
    say(f"memory: {next((b['timing'] or {}).get('memory_kind') for b in doc['backbones'])}")
    _print_robustness(doc.get("robustness"))
    _print_probe(doc.get("linear_probe"))


def _print_robustness(rob: dict | None) -> None:
    if not rob:
        return
    table = Table(title=f"robustness ({rob['rows']} rows, {rob['seconds']:.1f} s)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in ("backbone", "corruption", "mean |Δcos|", "Spearman ρ", "CE", "relative CE"):
        table.add_column(col, justify="left" if col in ("backbone", "corruption") else "right")
    for s in rob["summary"]:
        ce = s.get("mce") if s["corruption"] == "all" else s.get("ce")
        rel = s.get("relative_mce") if s["corruption"] == "all" else s.get("relative_ce")
        table.add_row(s["backbone"], s["corruption"], fmt(s["mean_abs_delta"]), fmt(s["spearman"]), fmt(ce),
                      fmt(rel))
    stdout.print(table)


def _print_probe(probe: dict | None) -> None:
    if not probe:
        return
    table = Table(title=f"linear probe on '{probe['column']}' ({probe['split']['test']} test rows, "
                        f"{probe['seconds']:.1f} s)", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("backbone", "k", "top-1", "95% CI", "zero-shot top-1"):
        table.add_column(col, justify="left" if col == "backbone" else "right")
    for r in probe["rows"]:
        ci = "-" if r["ci_low"] is None else f"{fmt(r['ci_low'])} … {fmt(r['ci_high'])}"
        table.add_row(r["backbone"], str(r["k"]), fmt(r["top1"]), ci, fmt(probe["zeroshot"][r["backbone"]]))
    stdout.print(table)
    if probe["skipped"]:
        say(f"linear probe: k = {', '.join(map(str, probe['skipped']))} skipped (a class has fewer training rows)")


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _recall(doc: dict) -> str:
    """``text_to_image R@1 0.50, R@5 …; image_to_text …`` from a retrieval recall document."""
    parts = []
    for direction, values in doc.items():
        if isinstance(values, dict) and all(isinstance(v, (int, float)) for v in values.values()):
            parts.append(direction + " " + ", ".join(f"{k} {fmt(float(v), 3)}" for k, v in values.items()))
    return "; ".join(parts) or "-"

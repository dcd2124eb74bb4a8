"""Render results files into one self-contained HTML page (Jinja2, autoescaped).

Everything the page shows is embedded: charts as PNG and thumbnails as JPEG ``data:`` URIs, styles and
the small (optional) sorting script inline. A Content-Security-Policy in the page forbids every network
request and any script but that one (allowed by its SHA-256), so the file opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

# a sibling module by its full name, so this module does not import its package's __init__ back
import clipgauge.report.classification as classification
import clipgauge.report.distribution as distribution
import clipgauge.report.languages as languages
import clipgauge.report.metric_sections as metric_sections
import clipgauge.report.sections as sections

from .._version import __version__
from ..atomic import write_atomic
from ..errors import UsageError
from ..scoring.scales import SCALE_DEFINITIONS, SCALES
from .inputs import ReportRun, load_runs


@dataclass
class ReportOptions:
    """What to put in the report.

    ``scale``: None uses the scale the runs were scored in when they agree, else ``cosine``.
    ``key``: columns that pair rows of different runs for the comparison (None: guessed).
    ``max_images``: grid size per run (worst first); ``thumb_size``: thumbnail box in pixels.
    ``distance_to``: a reference (statistics ``.npz``, or results with stored embeddings) for the distances
    section (CMMD, FD, Vendi; :mod:`clipgauge.report.distribution`).
    """

    title: str = "clipgauge report"
    scale: str | None = None
    sweep_param: str | None = None
    key: tuple[str, ...] | None = None
    category_column: str = "category"
    max_images: int = 200
    thumb_size: int = 160
    max_error_rows: int = 1000
    confidence: float = 0.95
    distance_to: str | None = None

    def check(self) -> None:
        if self.scale is not None and self.scale not in SCALES:
            raise UsageError(f"unknown scale '{self.scale}' (choose from {', '.join(SCALES)})")
        if self.max_images < 0:
            raise UsageError("max_images must be >= 0", cli="--max-images must be >= 0")
        if not 16 <= self.thumb_size <= 1024:
            raise UsageError("thumb_size must be between 16 and 1024 pixels",
                             cli="--thumb-size must be between 16 and 1024 pixels")


@dataclass
class ReportResult:
    """What was written: the page, its size in bytes, and per-run counts (the CLI's ``--json``)."""

    out: Path
    bytes: int
    title: str
    scale: str
    runs: list[dict[str, Any]]
    sections: list[str]
    warnings: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "bytes": self.bytes, "title": self.title, "scale": self.scale,
                "runs": self.runs, "sections": self.sections, "warnings": self.warnings,
                "comparison": self.comparison, "sweep": self.sweep}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clipgauge.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    return env


def _script() -> tuple[str, str]:
    """The inline sorting script and its CSP hash source (``'sha256-…'``)."""
    text = resources.files("clipgauge.report").joinpath("templates/report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return text, f"'sha256-{digest}'"


def pick_scale(runs: Sequence[ReportRun], requested: str | None) -> str:
    """*requested*, or the scale every run was scored in, or ``cosine`` when they differ or are unknown."""
    if requested is not None:
        return requested
    scales = {r.scored_scale for r in runs}
    only = scales.pop() if len(scales) == 1 else None
    return only if only in SCALES else "cosine"


def _warnings(runs: Sequence[ReportRun]) -> list[str]:
    out = []
    hashes = {r.weights_sha256 for r in runs if r.weights_sha256}
    if len(hashes) > 1:
        models = ", ".join(f"{r.name}: {r.model or 'unknown'}" for r in runs)
        out.append("These runs were scored with different model weights (" + models + "). Cosines of different "
                   "CLIP models are on different scales: compare images, not numbers, across them.")
    empty = [r.name for r in runs if not r.records]
    if empty:
        out.append(f"No rows in: {', '.join(empty)}.")
    return out


def render_report(runs: Sequence[ReportRun], options: ReportOptions | None = None) -> tuple[str, dict[str, Any]]:
    """The HTML page for *runs* and a summary of what it contains (``runs``, ``sections``, …).

    The clip score's sections (its statistics, histograms, per-category and per-language tables) are there when
    a run has the clip score; every metric a run's summary declares has its own statistics, histograms,
    per-category table and grid order. When a run lacks the clip score, runs compare on their first shared metric."""
    opts = options or ReportOptions()
    opts.check()
    scale = pick_scale(runs, opts.scale)
    fmt = sections.Formatter(scale)
    clip = any(r.has_clip for r in runs) or not any(r.metric_columns() for r in runs)
    primary = metric_sections.primary_metric(runs)
    summary = sections.summary_rows(runs, scale, opts.confidence)
    compared_in = "cosine" if primary else scale  # a metric's own values are not rescaled
    comp, comp_section = sections.comparison(runs, compared_in, opts.key, opts.category_column, opts.confidence,
                                             opts.sweep_param, metric=primary)
    clip_comp = comp if primary is None else None  # the per-category/-language clip tables reuse its statistics
    cats = sections.categories(runs, scale, opts.category_column, opts.confidence, clip_comp) if clip else None
    by_language = (languages.language_section(runs, scale, clip_comp, opts.confidence, opts.category_column)
                   if clip else None)
    sweep_section, sweep_json = (sections.sweep(runs, compared_in, opts.sweep_param, opts.confidence, metric=primary)
                                 if opts.sweep_param else (None, None))
    errors, error_total = sections.error_rows(runs, opts.max_error_rows)
    grids = sections.grids(runs, scale, opts.max_images, opts.thumb_size)
    classified = classification.classification_sections(runs, opts.thumb_size)
    distances = distribution.distribution_section(runs, opts.distance_to, opts.confidence)
    script, script_hash = _script()
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script_hash}; "
           "base-uri 'none'; form-action 'none'")
    methods = sorted({str(s["stats"]["ci_method"]) for s in summary})
    warnings = _warnings(runs)
    context = {
        "title": opts.title, "version": __version__, "scale": scale,
        "scale_definition": SCALE_DEFINITIONS[scale]["row"],
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "confidence_pct": round(100 * opts.confidence), "ci_methods": "; ".join(methods),
        "thumb_size": int(opts.thumb_size), "warnings": warnings, "runs": summary, "clip": clip,
        "metric_rows": metric_sections.metric_rows(runs, opts.confidence),
        "metric_histograms": metric_sections.metric_histograms(runs),
        "metric_categories": metric_sections.metric_categories(runs, opts.category_column, opts.confidence),
        "classification": classified, "distribution": distances,
        "comparison": comp_section, "histograms": sections.histograms(runs, scale) if clip else [],
        "categories": cats, "correlations": metric_sections.correlations(runs),
        "languages": by_language,
        "sweep": sweep_section, "error_rows": errors, "error_total": error_total,
        "error_left_out": error_total - len(errors), "grids": grids, "csp": csp, "script": Markup(script),
    }
    env = _environment()
    env.filters["num"] = fmt
    env.filters["sortval"] = sections.sort_value
    html = env.get_template("report.html.j2").render(context)
    info = {
        "scale": scale,
        "warnings": warnings,
        "sections": [name for name, present in (
            ("summary", True), ("metrics", bool(context["metric_rows"])), ("classification", bool(classified)),
            ("distribution", distances is not None),
            ("comparison", comp_section is not None), ("histograms", clip),
            ("correlations", bool(context["correlations"])),
            ("categories", cats is not None), ("languages", by_language is not None),
            ("sweep", sweep_section is not None), ("errors", True),
            ("images", True)) if present],
        "runs": [_run_info(s, g) for s, g in zip(summary, grids)],
        "comparison": comp.to_dict() if comp is not None else None,
        "sweep": sweep_json,
    }
    return html, info


def _run_info(summary: dict[str, Any], grid: dict[str, Any]) -> dict[str, Any]:
    st = summary["stats"]
    return {
        "name": summary["name"], "path": summary["path"], "model": summary["model"], "rows": summary["rows"],
        "scored": summary["scored"], "errors": summary["errors"], "truncated": summary["truncated"],
        "mean": summary["mean"], "mean_of": summary["mean_of"], "ci_low": st["ci_low"], "ci_high": st["ci_high"],
        "std": st["std"], "min": st["min"], "median": st["median"], "max": st["max"],
        "images_shown": len(grid["cards"]), "images_left_out": grid["left_out"], "images_missing": grid["missing"],
    }


def build_report(paths: Sequence[str | Path], out: str | Path, options: ReportOptions | None = None, *,
                 image_root: str | Path | None = None) -> ReportResult:
    """Read the results files at *paths* and write the report to *out* (atomically). See :class:`ReportOptions`."""
    opts = options or ReportOptions()
    opts.check()
    runs = load_runs(paths, image_root=image_root)
    html, info = render_report(runs, opts)
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name such as report.html",
                         cli=f"--out {out} is a folder; give a file name such as report.html")
    write_atomic(out, html)  # no half-written page, ordinary permissions
    return ReportResult(out=out, bytes=out.stat().st_size, title=opts.title, scale=info["scale"],
                        runs=info["runs"], sections=info["sections"], warnings=info["warnings"],
                        comparison=info["comparison"], sweep=info["sweep"])

"""HTML pages of ``clipgauge backbones --report`` and ``clipgauge validate --report``: self-contained (thumbnails
as ``data:`` URIs, no script, a Content-Security-Policy that forbids every request), one section per finding."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from .._version import __version__
from ..atomic import write_atomic
from ..errors import UsageError
from .thumbnails import thumbnails

_LABELS = {"kendall_tau_b": "Kendall τ-b", "kendall_tau_c": "Kendall τ-c", "spearman": "Spearman ρ",
           "pairwise_accuracy": "pairwise accuracy"}


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _mb(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _write(out: str | Path, title: str, sections: list[dict[str, Any]], thumb_size: int = 160) -> Path:
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name such as report.html",
                         cli=f"--report {out} is a folder; give a file name such as report.html")
    env = jinja2.Environment(loader=jinja2.PackageLoader("clipgauge.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("evaluation.html.j2").render(
        title=title, version=__version__, thumb_size=thumb_size, sections=sections,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    write_atomic(out, html)
    return out


def _section(id_: str, title: str, tables: list[dict[str, Any]] | None = None, notes: list[str] | None = None,
             cards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": id_, "title": title, "tables": tables or [], "notes": notes or [], "cards": cards or []}


def backbones_report(doc: dict[str, Any], out: str | Path, *, title: str = "clipgauge backbones",
                     thumb_size: int = 160) -> Path:
    """Write the backbone comparison *doc* (``BackboneComparison.to_dict()``): speed and memory per backbone,
    the correlation of every two, system agreement, and the rows they disagree on most, with their images."""
    bbs = doc["backbones"]
    timing = [b.get("timing") or {} for b in bbs]
    speed = {"header": ["backbone", "model", "scored", "mean cosine", "images/s", "load s", "weights MB",
                        "peak MB", "memory measured"],
             "rows": [[b["name"], b["model"], b["scored"], _num(b["mean"]), _num(t.get("images_per_s"), 1),
                       _num(t.get("load_s"), 2), _mb(t.get("weights_bytes")), _mb(t.get("peak_bytes")),
                       t.get("memory_kind", "-")] for b, t in zip(bbs, timing)]}
    corr = {"header": ["backbones", "rows", "Spearman ρ", "Kendall τ-b"],
            "rows": [[f"{c['a']} vs {c['b']}", c["n"], _num(c["spearman"]), _num(c["kendall_tau_b"])]
                     for c in doc["correlations"]]}
    sections = [
        _section("speed", "Backbones: speed and memory", [speed], doc.get("notes", [])[:1]),
        _section("correlations", "Agreement of per-row scores", [corr],
                 ["Correlations of per-row cosines over the rows both backbones scored (scipy.stats)."]),
    ]
    tasks = _tasks_table(bbs)
    if tasks is not None:
        sections.append(_section("tasks", "Zero-shot accuracy and recall@k", [tasks],
                                 ["Fractions in [0, 1]; recall@k with each row's prompt as its true caption."]))
    sections.extend(_robustness_sections(doc.get("robustness"), doc.get("linear_probe")))
    systems = doc.get("systems")
    if systems:
        names = [b["name"] for b in bbs]
        means = {"caption": "mean cosine per system",
                 "header": ["system", *names],
                 "rows": [[s, *(_num(systems["means"][n][s]) for n in names)] for s in systems["systems"]]}
        taus = {"caption": "ranking agreement", "header": ["backbones", "systems", "Kendall τ-b"],
                "rows": [[f"{t['a']} vs {t['b']}", t["systems"], _num(t["kendall_tau_b"])]
                         for t in systems["ranking_tau"]]}
        share = systems.get("sign_agreement")
        sections.append(_section("systems", "Agreement on systems", [means, taus], [
            f"All backbones agree on the sign of {_num(share, 3) if share is not None else '-'} of the "
            f"{systems['system_pairs']} system pairs (A − B mean difference)."]))
    rows = doc.get("disagreements") or []
    thumbs = thumbnails([r.get("image") or "" for r in rows], thumb_size) if rows else []
    cards = [{"uri": t.uri, "missing": t.error or "no image", "prompt": r.get("prompt") or "",
              "lines": [f"row {r['index']} · spread {r['spread']:.2f}"] + [
                  f"{n}: cos {_num(r['cosines'][n])} · pct {_num(r['percentiles'][n], 2)}" for n in r["cosines"]]}
             for r, t in zip(rows, thumbs)]
    sections.append(_section("disagreements", "Rows the backbones disagree on most", notes=[
        "Largest spread of rank percentiles (a row's rank among all rows under each backbone, divided by n)."],
        cards=cards))
    return _write(out, title, sections, thumb_size)


def _robustness_sections(rob: dict[str, Any] | None, probe: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``--robustness`` and ``--linear-probe`` sections (none when neither was asked for)."""
    out = []
    if rob:
        summary = {"caption": "per corruption (means over severities; 'all': over every corruption)",
                   "header": ["backbone", "corruption", "mean |Δcos|", "Spearman ρ", "clean top-1", "CE",
                              "relative CE"],
                   "rows": [[s["backbone"], s["corruption"], _num(s["mean_abs_delta"]), _num(s["spearman"]),
                             _num(s.get("clean_top1")), _num(s.get("mce", s.get("ce"))),
                             _num(s.get("relative_mce", s.get("relative_ce")))] for s in rob["summary"]]}
        per = {"caption": "per severity", "header": ["backbone", "corruption", "severity", "rows", "mean |Δcos|",
                                                     "Spearman ρ", "zero-shot top-1"],
               "rows": [[r["backbone"], r["corruption"], r["severity"], r["n"], _num(r["mean_abs_delta"]),
                         _num(r["spearman"]), _num(r.get("top1"))] for r in rob["tables"]]}
        out.append(_section("robustness", "Robustness to corruptions", [summary, per], [
            f"{rob['rows']} rows; took {rob['seconds']:.2f} s (backbones loaded in {rob.get('load_s', 0):.2f} s).",
            *rob.get("notes", [])]))
    if probe:
        table = {"header": ["backbone", "k per class", "probe top-1", "95% CI", "runs", "zero-shot top-1"],
                 "rows": [[r["backbone"], r["k"], _num(r["top1"]),
                           "-" if r["ci_low"] is None else f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
                           len(r["runs"]), _num(probe["zeroshot"][r["backbone"]])] for r in probe["rows"]]}
        split = probe["split"]
        out.append(_section("linear-probe", f"Transfer: linear probe on '{probe['column']}'", [table], [
            f"{len(probe['classes'])} classes; split train {split['train']} / validation {split['validation']} / "
            f"test {split['test']} (seed {split['seed']}); took {probe['seconds']:.2f} s.",
            *([f"k = {', '.join(map(str, probe['skipped']))} skipped: a class has too few training rows."]
              if probe["skipped"] else []), *probe.get("notes", [])]))
    return out


def _tasks_table(bbs: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not any(b.get("zeroshot") or b.get("recall") for b in bbs):
        return None
    ks = next((b["recall"].get("ks", []) for b in bbs if b.get("recall")), [])
    header = ["backbone", "zero-shot top-1", "top-5", "mean per-class recall"]
    header += [f"text→image R@{k}" for k in ks] + [f"image→text R@{k}" for k in ks]
    rows = []
    for b in bbs:
        z, r = b.get("zeroshot") or {}, b.get("recall") or {}
        rows.append([b["name"], _num(z.get("top1")), _num(z.get("top5")), _num(z.get("mean_per_class_recall"))]
                    + [_num((r.get("text_to_image") or {}).get(str(k))) for k in ks]
                    + [_num((r.get("image_to_text") or {}).get(str(k))) for k in ks])
    return {"header": header, "rows": rows}


def validation_report(doc: dict[str, Any], out: str | Path, *, title: str = "clipgauge validate") -> Path:
    """Write the validation *doc* (``ValidationResult.to_dict()``): each statistic with its CI, and the
    published numbers of the benchmark beside it."""
    pct = round(100 * doc.get("confidence", 0.95))
    measured = {"header": ["statistic", "measured", f"{pct}% CI"], "rows": []}
    for key, label in _LABELS.items():
        value = doc.get(key)
        if value is None:
            continue
        ci = doc.get(f"{key}_ci") or [None, None]
        measured["rows"].append([label, _num(value), f"[{_num(ci[0])}, {_num(ci[1])}]"])
    published = {"caption": f"published ({doc.get('benchmark') or 'no recognised benchmark'})",
                 "header": ["metric", "statistic", "published", "measured here", "model", "source"],
                 "rows": [[p["metric"], _LABELS[p["statistic"]], _num(p["value"], 3),
                           _num(doc.get(p["statistic"]), 3) if p["matches"] else "-", p["model"], p["source"]]
                          for p in doc.get("published") or []]}
    notes = [f"{doc['n']} judged units ({doc.get('left_out', 0)} left out: not scored or not rated); metric "
             f"{doc.get('metric') or '-'}, column {doc.get('column')}; {doc.get('n_resamples')} bootstrap resamples."]
    if doc.get("pairwise_accuracy") is not None:
        notes.append("Pairwise accuracy: 1 when the metric prefers the image people preferred (or both call it a "
                     "tie), 0.5 when exactly one of them is a tie, else 0 (Pick-a-Pic's convention).")
    tables = [measured] + ([published] if published["rows"] else [])
    return _write(out, title, [_section("validation", "Agreement with human judgement", tables, notes)])

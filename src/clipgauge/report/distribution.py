"""The report's section for distribution distances and diversity (``clipgauge report RUN --distance-to REF``).

Per run:

* with ``--distance-to REF`` (a reference-statistics ``.npz`` from ``clipgauge distance --save-reference``, or
  another results file or folder scored with ``--save-embeddings``): CMMD and FD between the run's stored image
  embeddings and REF, each with its bootstrap CI, and the Vendi score of the run's images and of REF's, from
  :func:`clipgauge.distribution.run.distance`;
* when the run was scored with ``--metric diversity``: its per-prompt diversity over prompt groups (mean pairwise
  cosine distance in [0, 2], with the CI of the mean over groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..stats.diversity import diversity_of_records
from .inputs import ReportRun

#: the distances the section gives (Vendi of both sides comes with ``vendi``)
SECTION_METRICS = ("cmmd", "fd", "vendi")


def distribution_section(runs: Sequence[ReportRun], distance_to: str | Path | None, confidence: float
                         ) -> dict[str, Any] | None:
    """``{"reference": REF or None, "rows": [...]}`` with one row per run that has a distance or a diversity;
    None when no run has either. A run without stored embeddings, with a distance asked for, is refused with one
    line (:class:`UsageError`)."""
    rows = []
    for i, run in enumerate(runs):
        diversity = diversity_of_records(run.records, confidence=confidence)
        dist = _distance(run, distance_to) if distance_to is not None else None
        if diversity is None and dist is None:
            continue
        rows.append({"index": i, "run": run.name, "diversity": diversity, "distance": dist})
    if not rows:
        return None
    return {"reference": None if distance_to is None else str(distance_to), "rows": rows,
            "has_distance": distance_to is not None, "has_diversity": any(r["diversity"] for r in rows)}


def _distance(run: ReportRun, reference: str | Path) -> dict[str, Any]:
    from ..sinks import ResultsReader

    if "image_embedding" not in ResultsReader(run.path).column_names():  # a folder's records leave them out
        raise UsageError(f"report --distance-to: {run.path} has no stored image embeddings (score it with "
                         f"--save-embeddings)")
    from ..distribution.run import distance

    doc = distance(str(run.path), str(reference), metrics=SECTION_METRICS)
    out: dict[str, Any] = {"n_generated": doc.get("n_generated"), "n_reference": doc.get("n_reference"),
                           "model": doc.get("model")}
    for name in ("cmmd", "fd"):
        ci = doc.get(f"{name}_ci") or [float("nan"), float("nan")]
        out[name] = {"value": _float(doc.get(name)), "ci_low": _float(ci[0]), "ci_high": _float(ci[1])}
    out["vendi_generated"] = _float(doc.get("vendi_generated"))
    out["vendi_reference"] = _float(doc.get("vendi_reference"))
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")

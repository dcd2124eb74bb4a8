"""What ``clipgauge compare`` shows besides the paired CLIP-score tests: each run's per-prompt diversity (when the
runs were scored with ``--metric diversity``) and, with ``--distance``, the distribution distance between the runs'
stored image embeddings (``score --save-embeddings``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..stats.diversity import diversity_of_records

#: the distances ``compare --distance`` gives by default
DEFAULT_DISTANCES = ("cmmd", "fd")


def run_diversity(runs: dict[str, list[dict[str, Any]]], confidence: float) -> dict[str, dict[str, Any]]:
    """Per run whose rows have the ``diversity`` column: its diversity over prompt groups (mean pairwise cosine
    distance in [0, 2], :func:`~clipgauge.stats.diversity.diversity_of_records`); {} when no run has it."""
    out = {}
    for name, records in runs.items():
        d = diversity_of_records(records, confidence=confidence)
        if d is not None:
            out[name] = d
    return out


def has_embeddings(path: Path) -> bool:
    """Whether the results at *path* store the rows' image embeddings (``score --save-embeddings``)."""
    from ..sinks import ResultsReader

    return "image_embedding" in ResultsReader(path).column_names()


def pair_distances(paths: dict[str, Path], pairs: Sequence[tuple[str, str]], metrics: Sequence[str],
                   **options: Any) -> list[dict[str, Any]]:
    """For each pair ``(a, b)`` of run names: :func:`clipgauge.distribution.run.distance` of run *a*'s stored
    embeddings (generated side) to run *b*'s (reference side), with ``a`` and ``b`` added. A run without stored
    embeddings is refused with one line before anything is computed."""
    for path in paths.values():
        if not has_embeddings(path):
            raise UsageError(f"compare --distance: {path} has no stored image embeddings (score it with "
                             f"--save-embeddings)")
    from ..distribution.run import distance

    out = []
    for a, b in pairs:
        result = distance(str(paths[a]), str(paths[b]), metrics=tuple(metrics), **options)
        out.append({"a": a, "b": b, **result})
    return out


def parse_distances(text: str) -> tuple[str, ...]:
    """``--distance-metric cmmd,fd,kid`` → the names (lower-case); UsageError when empty."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if not names:
        raise UsageError("--distance-metric names no metric (e.g. cmmd,fd)")
    return names


def diversity_table(diversity: dict[str, dict[str, Any]], label: dict[str, str], conf: str) -> Any:
    """A table of each run's per-prompt diversity (groups, mean, CI)."""
    from rich import box
    from rich.table import Table

    from .evalio import fmt

    table = Table(title="per-prompt diversity (mean pairwise cosine distance among a prompt's images, 0-2, higher "
                        "= more varied)", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("", "run", "groups", "mean", conf):
        table.add_column(col, justify="left" if col in ("", "run") else "right", no_wrap=col != "run")
    for name, d in diversity.items():
        table.add_row(label.get(name, name), name, str(d["groups"]), fmt(d["mean"]),
                      f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]")
    return table


def distance_table(distances: list[dict[str, Any]], label: dict[str, str], metrics: Sequence[str]) -> Any:
    """A table of the distances between runs: one row per pair, each distance with its bootstrap CI."""
    from rich import box
    from rich.table import Table

    from .evalio import fmt

    table = Table(title="distribution distance between the runs' image embeddings (A: generated, B: reference)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("pair", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    shown = [m for m in metrics if m in ("cmmd", "fd", "kid")]
    for m in shown:
        table.add_column(m, justify="right", no_wrap=True)
        table.add_column(f"{m} CI", justify="right", no_wrap=True)
    for d in distances:
        row = [f"{label.get(d['a'], d['a'])} → {label.get(d['b'], d['b'])}",
               f"{d.get('n_generated', '-')}/{d.get('n_reference', '-')}"]
        for m in shown:
            key = "kid_mean" if m == "kid" else m
            ci = d.get(f"{m}_ci") or d.get(f"{key}_ci")
            row += [fmt(_num(d.get(key))), f"[{fmt(_num(ci[0]))}, {fmt(_num(ci[1]))}]" if ci else "-"]
        table.add_row(*row)
    return table


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

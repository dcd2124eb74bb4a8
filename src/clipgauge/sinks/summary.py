"""The run summary file: ``FILE.summary.json`` beside the results ``FILE``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_atomic

#: the summary file inside a sharded results folder (``score --out DIR``)
SUMMARY_FILE = "_summary.json"


def summary_path(results_path: str | Path) -> Path:
    """``results.jsonl`` → ``results.jsonl.summary.json`` (beside it); a results folder → ``DIR/_summary.json``."""
    p = Path(results_path)
    if p.is_dir():
        return p / SUMMARY_FILE
    return p.with_name(p.name + ".summary.json")


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def read_summary(results_path: str | Path) -> dict[str, Any] | None:
    """The summary written beside a results file (or inside a results folder); None when there is none or it
    cannot be read (a damaged summary only costs what it declares; the records carry the scores)."""
    path = summary_path(results_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_summary(path: str | Path, summary: dict[str, Any]) -> Path:
    """Write *summary* as pretty JSON (NaN → null), atomically."""
    return write_atomic(path, json.dumps(json_safe(summary), indent=2, ensure_ascii=False) + "\n")

"""Human judgement files → rows to score and the human values to compare with (``clipgauge validate``).

Three formats, recognised from their content:

* **Flickr8K** (the CLIPScore paper's ``flickr8k.json`` = Flickr8K-Expert and ``crowdflower_flickr8k.json`` =
  Flickr8K-CF, written by its ``flickr8k_example/download.py``): a JSON object, per image
  ``{"image_path", "ground_truth": [captions], "human_judgement": [{"caption", "rating"}, …]}``. As in the paper's
  ``compute_metrics.py``, every judgement is one row (ratings are not averaged), NaN ratings are skipped, captions
  are whitespace-normalised, and ``ground_truth`` become the row's ``references``. A file whose name contains
  ``crowdflower`` is Flickr8K-CF, otherwise Flickr8K-Expert.
* **pairwise preferences**: a table (JSONL/CSV/TSV/Parquet) in the Pick-a-Pic layout — a prompt column (the
  first of ``prompt caption txt text`` present, as for every input: Pick-a-Pic's is ``caption``), ``jpg_0``/
  ``jpg_1`` (image bytes, Pick-a-Pic's own Parquet) or ``image_0``/``image_1`` (paths), ``label_0`` (1: image 0
  preferred, 0: image 1, 0.5: tie; or a ``choice`` column of 0/1/"tie") — or the HPDv2 test layout, a JSON list
  of ``{"prompt", "image_path": [paths], "rank": [ranks]}`` (rank 1 is best), expanded into every pair of one
  prompt's images (equal ranks are ties). Columns ``NAME_0``/``NAME_1`` (precomputed scores) become ``NAME`` on
  each image's row.
* **generic**: a table with ``image``, ``prompt`` and ``human`` (the human score, higher is better).

Relative image paths resolve against the judgement file's folder (or *image_root*).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import resolve_path
from .tables import PROMPT_COLUMNS, first_present

FORMATS = ("flickr8k", "pairwise", "generic")
TABLE_SUFFIXES = (".jsonl", ".csv", ".tsv", ".parquet")


@dataclass
class Judgements:
    """What people judged, ready to be scored.

    ``rows``: ``{"image", "prompt", ...}`` to score (image: an absolute path or bytes; ``references`` for
    Flickr8K). For ``kind == "ratings"``, ``human[i]`` is row *i*'s human score; for ``kind == "pairs"``,
    ``pairs[j] = (row of image 0, row of image 1, human share of image 0: 1, 0 or 0.5)``.
    ``benchmark``: the published benchmark the file looks like (``Flickr8K-Expert``, ``Flickr8K-CF``,
    ``Pick-a-Pic``, ``HPDv2``) or None.
    """

    path: Path
    format: str
    kind: str
    rows: list[dict[str, Any]]
    human: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    benchmark: str | None = None


def read_judgements(path: str | Path, *, image_root: str | Path | None = None) -> Judgements:
    """Read a judgement file in any of the three formats; :class:`UsageError` (one line) when it is none."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no judgement file '{path}'")
    root = (Path(image_root) if image_root is not None else path.parent).expanduser().resolve()
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read judgement file '{path}': {exc}") from None
        if isinstance(doc, dict):
            return _flickr8k(path, doc, root)
        if isinstance(doc, list):
            return _hpd(path, doc, root)
        raise UsageError(f"'{path}': a JSON judgement file is a Flickr8K object or an HPDv2 list")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"'{path}': judgement files are .json (Flickr8K, HPDv2) or a table "
                         f"({', '.join(TABLE_SUFFIXES)})")
    records = _table(path)
    if not records:
        raise UsageError(f"'{path}' has no rows")
    names = set().union(*(r.keys() for r in records))
    if {"human", "image", "prompt"} <= names:
        return _generic(path, records, root)
    image_cols = next(((a, b) for a, b in (("jpg_0", "jpg_1"), ("image_0", "image_1")) if {a, b} <= names), None)
    prompt_col = first_present(names, PROMPT_COLUMNS)
    label_col = next((c for c in ("label_0", "choice") if c in names), None)
    if image_cols and prompt_col and label_col:
        return _pairwise(path, records, root, image_cols, prompt_col, label_col)
    raise UsageError(f"'{path}' is not a judgement table: it needs the columns image, prompt, human (scores) or "
                     f"{'/'.join(PROMPT_COLUMNS)}, jpg_0/image_0, jpg_1/image_1, label_0/choice (preferences); it has "
                     f"{', '.join(sorted(names))}")


def _table(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL, CSV, TSV or Parquet table as dicts; :class:`UsageError` (one line) when unreadable."""
    import csv

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        with open(path, encoding="utf-8", newline="") as fh:
            if suffix == ".jsonl":
                rows = [json.loads(line) for line in fh if line.strip()]
                if not all(isinstance(r, dict) for r in rows):
                    raise ValueError("every line must be a JSON object")
                return rows
            return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read judgement file '{path}': {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors: a broken Parquet file
        raise UsageError(f"cannot read judgement file '{path}': {type(exc).__name__}: {exc}") from None


def _image(value: Any, root: Path) -> Any:
    """An image cell: bytes as they are (a HF ``Image`` struct's bytes), a path made absolute, else None."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value.strip():
        return str(resolve_path(value, root))
    return None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flickr8k(path: Path, doc: dict[str, Any], root: Path) -> Judgements:
    rows, human = [], []
    for key, item in doc.items():
        if not isinstance(item, dict) or "human_judgement" not in item or "image_path" not in item:
            raise UsageError(f"'{path}': entry '{key}' is not a Flickr8K judgement "
                             "(image_path, ground_truth, human_judgement)")
        refs = [" ".join(str(g).split()) for g in item.get("ground_truth") or []]
        image = str(resolve_path(item["image_path"], root))
        for j in item["human_judgement"]:
            rating = _number(j.get("rating"))
            if math.isnan(rating):  # the paper's code skips these
                continue
            rows.append({"image": image, "prompt": " ".join(str(j.get("caption")).split()),
                         "references": refs, "image_key": str(key)})
            human.append(rating)
    if not rows:
        raise UsageError(f"'{path}' has no rated captions")
    benchmark = "Flickr8K-CF" if "crowdflower" in path.name.lower() else "Flickr8K-Expert"
    return Judgements(path, "flickr8k", "ratings", rows, human=human, benchmark=benchmark)


def _generic(path: Path, records: list[dict[str, Any]], root: Path) -> Judgements:
    rows, human = [], []
    for r in records:
        extra = {k: v for k, v in r.items() if k not in ("image", "prompt", "human")}
        rows.append({**extra, "image": _image(r.get("image"), root), "prompt": r.get("prompt")})
        human.append(_number(r.get("human")))
    return Judgements(path, "generic", "ratings", rows, human=human)


def _label(value: Any, column: str) -> float:
    """The human share of image 0: 1, 0 or 0.5 (tie); NaN when unreadable."""
    if column == "choice":
        text = str(value).strip().lower()
        return {"0": 1.0, "1": 0.0, "tie": 0.5, "0.5": 0.5}.get(text, math.nan)
    v = _number(value)
    return v if v in (0.0, 0.5, 1.0) else math.nan


def _pairwise(path: Path, records: list[dict[str, Any]], root: Path, image_cols: tuple[str, str], prompt_col: str,
              label_col: str) -> Judgements:
    rows: list[dict[str, Any]] = []
    pairs = []
    for r in records:
        prompt = r.get(prompt_col)
        for which, col in enumerate(image_cols):  # NAME_0 / NAME_1 columns become NAME on that side's row
            side = {k[:-2]: v for k, v in r.items() if k.endswith(f"_{which}") and k not in (*image_cols, label_col)}
            rows.append({**side, "image": _image(r.get(col), root), "prompt": prompt, "side": which})
        pairs.append((len(rows) - 2, len(rows) - 1, _label(r.get(label_col), label_col)))
    benchmark = "Pick-a-Pic" if image_cols == ("jpg_0", "jpg_1") else None
    return Judgements(path, "pairwise", "pairs", rows, pairs=pairs, benchmark=benchmark)


def _hpd(path: Path, doc: list[Any], root: Path) -> Judgements:
    rows: list[dict[str, Any]] = []
    pairs = []
    for k, item in enumerate(doc):
        if not isinstance(item, dict) or not {"prompt", "image_path", "rank"} <= set(item):
            raise UsageError(f"'{path}': item {k} is not an HPDv2 judgement (prompt, image_path, rank)")
        paths, ranks = list(item["image_path"]), [_number(x) for x in item["rank"]]
        if len(paths) != len(ranks):
            raise UsageError(f"'{path}': item {k} has {len(paths)} images and {len(ranks)} ranks")
        first = len(rows)
        rows += [{"image": _image(p, root), "prompt": item["prompt"], "group": k} for p in paths]
        for a, b in combinations(range(len(paths)), 2):
            ra, rb = ranks[a], ranks[b]
            share = math.nan if math.isnan(ra) or math.isnan(rb) else 0.5 if ra == rb else float(ra < rb)
            pairs.append((first + a, first + b, share))
    if not pairs:
        raise UsageError(f"'{path}' has no pair of ranked images")
    return Judgements(path, "pairwise", "pairs", rows, pairs=pairs, benchmark="HPDv2")

"""The need seam (issue #21): a new kind of shared input is one class plus a registration, and a metric that
declares it works with ``score --out FILE``, ``--out DIR``, the Ray engine, ``filter`` and ``report``.

Two new kinds are defined here, one per phase of the scoring step: ``image_dimensions`` (from each row's decoded
image, decoded once for every kind and model) and ``prompt_length`` (from the rows, before their images). The
metric ``shape`` reads both; its primary column is ``aspect`` (width / height, higher is better), which is what
``filter --metric shape`` and the report rank by. Real runs of the shipped demo CLIP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import score_on_ray
from PIL import Image

from clipgauge.cli import main
from clipgauge.metrics import (
    IMAGES,
    ROWS,
    Column,
    Metric,
    MetricOutput,
    Need,
    NeedKind,
    register_metric,
    register_need,
    unregister_metric,
)
from clipgauge.report.build import build_report
from clipgauge.sinks import read_results


# --------------------------------------------------------------------------- the new kinds and their metric
@register_need
class ImageSize(NeedKind):
    """``image_dimensions``: (width, height) of each row's decoded image, in pixels."""

    name = "image_dimensions"
    phase = IMAGES

    def of_image(self, image):
        return image.size


@register_need
class PromptLength(NeedKind):
    """``prompt_length``: characters of each row's prompt (NaN where it has none)."""

    name = "prompt_length"
    phase = ROWS

    def compute(self, context, need, batch):
        batch.values[need] = np.array([len(r.prompt) if isinstance(r.prompt, str) else np.nan for r in batch.rows])
        batch.errors[need] = [None] * len(batch)


class Shape(Metric):
    name = "shape"
    summary = "aspect ratio of the image and characters of the prompt"

    def needs(self):
        return [Need("image_dimensions"), Need("prompt_length")]

    def columns(self):
        return [Column("aspect", range=(0.0, None), unit="width / height"),
                Column("prompt_chars", range=(0.0, None), unit="characters", higher_is_better=None)]

    def compute(self, batch):
        sizes = batch.values[Need("image_dimensions")]
        return MetricOutput({"aspect": np.array([np.nan if s is None else s[0] / s[1] for s in sizes]),
                             "prompt_chars": batch.values[Need("prompt_length")]})


SIZES = [(40, 32), (32, 40), (64, 16), (20, 60), (50, 50), (90, 30), (30, 45)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("need_seam")
    rows = []
    for i, size in enumerate(SIZES):
        Image.new("RGB", size, (30 * i, 200 - 25 * i, 90)).save(root / f"i{i}.png")
        rows.append({"id": i, "image": f"i{i}.png", "prompt": "a square" + " that is coloured" * i})
    rows.append({"id": 7, "image": "missing.png", "prompt": "gone"})  # an error row: no aspect, still a length
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    register_metric(Shape)
    try:
        for out, metrics in (("r.jsonl", ["clip", "shape"]), ("dir", ["clip", "shape"]), ("s.jsonl", ["shape"])):
            argv = ["score", str(root / "m.jsonl"), "--model", "demo", "--device", "cpu", "--shard-size", "3",
                    "--out", str(root / out)]
            for m in metrics:
                argv += ["--metric", m]
            assert main(argv) == 1  # the missing image
        yield root
    finally:
        unregister_metric("shape")


def _expected(records):
    return [w / h for w, h in SIZES] + [None], [len(r["prompt"]) for r in records]


def test_score_out_file_computes_both_new_needs(data):
    records = read_results(data / "r.jsonl")
    aspect, chars = _expected(records)
    assert [r["aspect"] for r in records][:-1] == pytest.approx(aspect[:-1]) and records[-1]["aspect"] is None
    assert [r["prompt_chars"] for r in records[:-1]] == chars[:-1]
    assert records[-1]["error"] and all(r["cosine"] is not None for r in records[:-1])
    summary = json.loads((data / "r.jsonl.summary.json").read_text())
    assert summary["aspect"]["n"] == len(SIZES)
    # the summary marks each metric's primary column: its readers ask the metric, not a column name
    primary = {c["metric"]: c["name"] for c in summary["columns"] if c.get("primary")}
    assert primary == {"clip": "cosine", "shape": "aspect"}
    # the image-only run (no model at all) gives the same values
    alone = read_results(data / "s.jsonl")
    assert [r["aspect"] for r in alone] == [r["aspect"] for r in records]


def test_score_out_dir_gives_the_same_rows(data):
    folder = read_results(data / "dir")
    assert [{k: r[k] for k in ("id", "aspect", "prompt_chars", "error")} for r in folder] == \
           [{k: r[k] for k in ("id", "aspect", "prompt_chars", "error")} for r in read_results(data / "r.jsonl")]


def test_filter_ranks_by_the_metrics_primary_column(data, tmp_path):
    out = tmp_path / "kept.jsonl"
    assert main(["filter", str(data / "dir"), "--metric", "shape", "--top-fraction", "0.5", "--out", str(out)]) == 0
    kept = read_results(out)
    best = sorted(range(len(SIZES)), key=lambda i: -SIZES[i][0] / SIZES[i][1])[: len(kept)]
    assert sorted(r["id"] for r in kept) == sorted(best) and len(kept) >= 3


def test_report_takes_the_metrics_primary_column(data, tmp_path):
    result = build_report([data / "s.jsonl"], tmp_path / "report.html")
    run = result.runs[0]
    assert run["mean_of"] == "aspect"
    assert run["mean"] == pytest.approx(np.mean([w / h for w, h in SIZES]))
    assert "aspect" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_ray_engine_computes_the_new_needs(data, tmp_path):
    assert score_on_ray(Shape, data / "m.jsonl", tmp_path / "ray.jsonl", shard_size=3) == 1
    got, want = read_results(tmp_path / "ray.jsonl"), read_results(data / "r.jsonl")
    assert [(r["id"], r["aspect"], r["prompt_chars"]) for r in got] == \
           [(r["id"], r["aspect"], r["prompt_chars"]) for r in want]


def test_an_unknown_need_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="image_dimensions.*prompt_length"):
        Need("image_dimensionz")

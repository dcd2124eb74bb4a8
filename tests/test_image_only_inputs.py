"""Inputs without prompts: when no metric reads the row's prompt (``zeroshot``), a folder without ``.txt`` sidecars,
a manifest without a ``prompt`` column, Parquet without a caption column and WebDataset samples without a caption
are read without errors; a run that needs prompts still reports them missing."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import random_rgb

from clipgauge.metrics.zeroshot import ZeroShot
from clipgauge.pipeline.plan import ScoreOptions, build_metrics, needs_prompts
from clipgauge.sources.detect import open_source


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    random_rgb(seed).save(buf, "PNG")
    return buf.getvalue()


def errors(spec, require_prompt: bool) -> list:
    return [r.error for r in open_source(spec, require_prompt=require_prompt).rows()]


def test_image_only_metrics_need_no_prompt() -> None:
    assert not needs_prompts(build_metrics(ScoreOptions(metrics=[(ZeroShot, {"labels": ["a", "b"]})])))
    assert needs_prompts(build_metrics(ScoreOptions(metrics=["clip"])))


def test_every_input_kind_reads_without_prompts(tmp_path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png(i))
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"image": f"folder/{i}.png", "class": "x"}) + "\n"
                                              for i in range(3)), encoding="utf-8")
    pq.write_table(pa.table({"jpg": [png(i) for i in range(3)], "class": ["x"] * 3}), tmp_path / "t.parquet")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for i in range(3):
            data = png(i)
            info = tarfile.TarInfo(f"{i:04d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for spec in (folder, tmp_path / "m.jsonl", tmp_path / "t.parquet", tmp_path / "s.tar"):
        assert errors(spec, require_prompt=False) == [None] * 3, spec
    assert all(e and "prompt" in e for e in errors(folder, require_prompt=True))
    assert all(e and "caption" in e for e in errors(tmp_path / "s.tar", require_prompt=True))

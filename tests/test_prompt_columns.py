"""One list of prompt column names, in one order, for every input that looks the prompt up by name (Parquet, HF
datasets, a WebDataset sample's .json, a pairwise judgement table); and one image-path resolution
(:mod:`clipgauge.paths`) for every source."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipgauge.errors import UsageError
from clipgauge.sources import tables
from clipgauge.sources.detect import open_source
from clipgauge.sources.judgements import read_judgements
from test_sources_shards import add_member, sample

ORDER = ("prompt", "caption", "txt", "text")


def _wds(folder: Path, metas: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for i, meta in enumerate(metas):
            add_member(tar, f"{i:04d}.jpg", sample(i)[0])
            add_member(tar, f"{i:04d}.json", json.dumps(meta).encode())
    return folder / "00000.tar"


def test_the_one_documented_order():
    assert tables.PROMPT_COLUMNS == ORDER


def test_every_input_takes_the_first_prompt_column_present(tmp_path):
    all_four = {"text": "t", "txt": "x", "caption": "c", "prompt": "p"}
    metas = [all_four, {"text": "t", "caption": "c"}, {"text": "t", "txt": "x"}, {"text": "t"}]
    expected = ["p", "c", "x", "t"]
    rows = list(open_source(_wds(tmp_path / "wds", metas)).rows())
    assert [r.prompt for r in rows] == expected  # was "caption" before "prompt", and no "txt", in a .json
    for k, meta in enumerate(metas):
        path = tmp_path / f"{k}.parquet"
        pq.write_table(pa.table({"jpg": [sample(0)[0]], **{c: [v] for c, v in meta.items()}}), path)
        assert open_source(path).prompt_column == next(c for c in ORDER if c in meta)
        assert [r.prompt for r in open_source(path).rows()] == [expected[k]]
    pairs = [{"caption": "c", "prompt": "p", "image_0": "a.png", "image_1": "b.png", "label_0": 1}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in pairs))
    judged = read_judgements(tmp_path / "pairs.jsonl")
    assert judged.format == "pairwise" and [r["prompt"] for r in judged.rows] == ["p", "p"]  # was "c"


def test_missing_prompt_column_names_the_list(tmp_path):
    (tmp_path / "t.jsonl").write_text(json.dumps({"title": "x", "image_0": "a", "image_1": "b", "label_0": 1}))
    with pytest.raises(UsageError, match="prompt/caption/txt/text, jpg_0"):
        read_judgements(tmp_path / "t.jsonl")
    rows = list(open_source(_wds(tmp_path / "wds", [{"title": "x"}])).rows())
    assert rows[0].error == "no caption in sample 0000 (.txt, or prompt/caption/txt/text in .json)"


def test_relative_and_home_paths_resolve_alike_in_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pq.write_table(pa.table({"image": ["a/x.jpg", "~/y.jpg", str(tmp_path / "z.jpg")], "prompt": ["p"] * 3}),
                   tmp_path / "in.parquet")
    expected = [tmp_path / "a" / "x.jpg", tmp_path / "home" / "y.jpg", tmp_path / "z.jpg"]
    assert [r.image for r in open_source(tmp_path / "in.parquet").rows()] == expected
    src = open_source(tmp_path / "in.parquet")
    assert [src.resolve_path(v) for v in ("a/x.jpg", "~/y.jpg", str(tmp_path / "z.jpg"))] == expected
    table = [{"image": v, "prompt": "p", "human": 1} for v in ("a/x.jpg", "~/y.jpg", str(tmp_path / "z.jpg"))]
    (tmp_path / "j.jsonl").write_text("\n".join(json.dumps(r) for r in table))
    assert [r["image"] for r in read_judgements(tmp_path / "j.jsonl").rows] == [str(p) for p in expected]
    flickr = {"1": {"image_path": "~/f.jpg", "ground_truth": ["a"], "human_judgement": [{"caption": "a", "rating": 2}]}}
    (tmp_path / "flickr8k.json").write_text(json.dumps(flickr))
    assert read_judgements(tmp_path / "flickr8k.json").rows[0]["image"] == str(tmp_path / "home" / "f.jpg")

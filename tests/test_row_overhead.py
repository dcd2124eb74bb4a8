"""The per-row fast paths give what the plain ones gave: JSONL lines (orjson) parse to the records ``json.dumps``
wrote, manifest lines read by orjson are the ``json.loads`` records (with its fallback for what orjson refuses),
and metric columns built from numpy arrays equal those built from Python values."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from clipgauge.pipeline.score import _numeric_column
from clipgauge.sinks.file import jsonl_lines
from clipgauge.sinks.results import clean_value
from clipgauge.sources.manifest import _jsonl_record
from clipgauge.text import clean_value as cleaned


def test_jsonl_lines_read_back_as_the_records_json_dumps_wrote():
    table = pa.table({
        "image": ["a.png", None, "ü/€ \"quoted\"\n.png"],
        "cosine": [0.1234567890123, float("nan"), -1.0],
        "score": pa.array([0.5, None, 2.5], pa.float32()),
        "n": pa.array([1, 2**62, None], pa.int64()),
        "flag": [True, False, True],
        "when": [datetime(2024, 1, 2, 3, 4, 5), None, datetime(2000, 1, 1)],
        "tags": [["x", "y"], [], None],
        "meta": [{"k": 1}, {"k": None}, None],
    })
    expected = [json.loads(json.dumps({c: clean_value(r[c]) for c in table.column_names}, ensure_ascii=False,
                                      default=str)) for r in table.to_pylist()]
    text = jsonl_lines(table)
    assert text.endswith("\n") and text.count("\n") == 3
    got = [json.loads(line) for line in text.splitlines()]
    assert got == [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                   for r in expected]
    assert got[1]["cosine"] is None and got[0]["when"] == "2024-01-02 03:04:05"  # NaN → null; dates as str()
    assert jsonl_lines(table.slice(0, 0)) == ""


@pytest.mark.parametrize("line", [
    b'{"image": "a.png", "prompt": "x", "seed": 3}',
    b'{"image": "\\u00fc.png", "prompt": "caf\xc3\xa9", "v": 1.5e-300, "w": [1, {"a": null}]}',
    b'{"image": "a.png", "v": NaN, "w": Infinity}',  # json accepts these, orjson does not
    b'{"image": "a.png", "big": 123456789012345678901234567890}',
    b'{"image": "a.png", "s": "\\ud800", "\\udc00": ["\\ud83d\\ude00"]}',  # lone surrogates (U+FFFD), a pair
    b'{"a": 1, "a": 2}',
])
def test_manifest_lines_read_as_json_loads_reads_them(line):
    fields, error = _jsonl_record(line, 2)
    assert error is None
    expected = cleaned(json.loads(line.decode("utf-8")))  # lone surrogates as U+FFFD (clipgauge.text)
    assert json.dumps(fields, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert list(fields) == list(expected)


@pytest.mark.parametrize("line, reason", [(b"[1, 2]", "not a JSON object"), (b'{"a": ', "invalid JSON"),
                                          (b"\xff{}", "not valid UTF-8")])
def test_broken_manifest_lines_keep_their_reasons(line, reason):
    fields, error = _jsonl_record(line, 5)
    assert fields == {"line": 5} and reason in error


@pytest.mark.parametrize("dtype, type_", [(np.float32, pa.float64()), (np.float64, pa.float64()),
                                           (np.float64, pa.float32()), (np.int64, pa.int64()),
                                           (np.int64, pa.float64()), (np.bool_, pa.bool_())])
def test_numeric_columns_equal_the_python_value_path(dtype, type_):
    raw = np.array([0.25, np.nan, 3.0, -1.5, 0.0])
    values = raw.astype(dtype) if np.dtype(dtype).kind == "f" else np.nan_to_num(raw).astype(dtype)
    broken = np.array([False, False, True, False, False])
    cells = [None if b or (isinstance(v, (float, np.floating)) and np.isnan(v)) else v.item()
             for v, b in zip(values, broken)]
    if pa.types.is_boolean(type_):
        cells = [bool(c) if c is not None else False for c in cells]
    col = _numeric_column(values, broken, type_)
    assert col is not None and col.equals(pa.array(cells, type=type_))
    assert _numeric_column(values.astype(object), broken, type_) is None  # not numeric: the slow path


def test_missing_files_are_skipped_before_the_threads_with_the_threads_reason(tmp_path):
    from pathlib import Path

    from PIL import Image

    from clipgauge.scoring.pipeline import Skip, absent_as_skips, prepare_image

    good = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(good)
    (tmp_path / "dir.png").mkdir()
    sources = [str(tmp_path / "gone.png"), tmp_path / "sub" / "gone.jpg", f"{tmp_path}//x/./gone.png", good,
               str(tmp_path / "dir.png"), b"raw", None]
    got = list(absent_as_skips(sources))
    assert [isinstance(g, Skip) for g in got] == [True, True, True, False, True, False, False]  # a folder: by stat
    assert got[3] == sources[3] and got[5:] == sources[5:]  # present files and other inputs go to the threads
    for k in (0, 1, 2, 4):  # the reason the decode thread gives for the same path
        assert got[k].reason == prepare_image(sources[k], lambda im: im, max_pixels=10**6, draft=None).skip
    assert got[2].reason == f"file not found: {Path(tmp_path, 'x', 'gone.png')}"


def test_rows_skipped_before_the_threads_keep_the_prefetch_in_place(hf_model_dir, tmp_path):
    from conftest import jpeg_bytes, random_rgb

    from clipgauge import Scorer
    from clipgauge.scoring.pipeline import Skip

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"img_{i}.jpg")
        paths[-1].write_bytes(jpeg_bytes(random_rgb(i, size=(100 + 9 * i, 90))))
    expected = Scorer(f"hf:{hf_model_dir}", device="cpu").embed_images(paths)
    sources = [Skip("broken in the source"), *paths, tmp_path / "gone.jpg"]
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", prefetch=[None, *paths])
    for _, fut in scorer._prefetch.jobs:
        if fut is not None:
            fut.result()
    for p in paths:  # only the prefetched pixels are left: each must be served to its own row
        p.unlink()
    emb, errors = scorer.try_embed_images(sources)
    assert errors == ["broken in the source", *[None] * 5, f"file not found: {tmp_path / 'gone.jpg'}"]
    np.testing.assert_allclose(emb[1:6], expected, atol=1e-6)
    assert np.isnan(emb[0]).all() and np.isnan(emb[6]).all()


@pytest.mark.parametrize("text", ["plain", "a},{b", '"},{"', "}\n{"])
def test_jsonl_lines_split_one_object_per_row_whatever_the_text(text):
    table = pa.table({"prompt": [text, "x", text], "items": [[{"a": 1}, {"a": 2}], None, [{"b": "},{"}]],
                      "n": [1, 2, 3]})
    lines = jsonl_lines(table).split("\n")
    assert lines[-1] == "" and len(lines) == 4
    assert [json.loads(line) for line in lines[:-1]] == table.to_pylist()

"""Manifests in every format, the folder-with-sidecars layout, and broken rows kept with a reason."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipgauge.errors import ManifestError
from clipgauge.sources import read_manifest


def write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt in ("csv", "tsv"):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_formats_resolve_paths_and_keep_columns(tmp_path, fmt):
    rows = [{"id": "a", "image": "x/1.png", "prompt": "a cat", "model": "m1"},
            {"id": "b", "image": str(tmp_path / "abs.png"), "prompt": "a dog", "model": "m2"}]
    path = tmp_path / f"m.{fmt}"
    write(path, rows, fmt)
    m = read_manifest(path)
    assert m.kind == fmt and m.columns == ["id", "image", "prompt", "model"]
    assert [r.image for r in m.rows] == [tmp_path / "x/1.png", tmp_path / "abs.png"]
    assert [r.prompt for r in m.rows] == ["a cat", "a dog"]
    assert m.rows[1].fields["model"] == "m2" and all(r.error is None for r in m.rows)


@pytest.mark.parametrize("missing", ["image", "prompt"])
def test_missing_column_is_a_usage_error_naming_it(tmp_path, missing):
    row = {"image": "1.png", "prompt": "x"}
    row.pop(missing)
    write(tmp_path / "m.csv", [row], "csv")
    with pytest.raises(ManifestError, match=f"no '{missing}' column"):
        read_manifest(tmp_path / "m.csv")


def test_unreadable_or_unknown_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ManifestError, match="unsupported manifest format"):
        read_manifest(tmp_path / "m.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "bad.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(tmp_path / "empty.csv")


def test_broken_rows_are_kept_with_reasons(tmp_path):
    lines = [
        json.dumps({"image": "1.png", "prompt": "ok"}),
        "{not json",
        json.dumps({"image": "2.png", "prompt": None}),
        json.dumps({"image": "", "prompt": "x"}),
        json.dumps({"image": "3.png", "prompt": 42}),
        json.dumps(["a", "list"]),
        json.dumps({"prompt": "no image key"}),
    ]
    (tmp_path / "m.jsonl").write_bytes(("\n".join(lines) + "\n").encode() + b'{"image": "\xff"}\n')
    m = read_manifest(tmp_path / "m.jsonl")
    errors = [r.error for r in m.rows]
    assert len(m.rows) == 8
    assert errors[0] is None
    assert "invalid JSON" in errors[1]
    assert "missing 'prompt'" in errors[2]
    assert "missing 'image'" in errors[3] and "missing 'image'" in errors[6]
    assert "not text" in errors[4]
    assert "not a JSON object" in errors[5]
    assert "UTF-8" in errors[7]


def test_csv_row_with_wrong_field_count(tmp_path):
    (tmp_path / "m.csv").write_text("image,prompt,seed\n1.png,a cat,1\n2.png\n3.png,a dog,3,extra\n")
    m = read_manifest(tmp_path / "m.csv")
    assert [r.error is None for r in m.rows] == [True, False, False]
    assert "1 fields, header has 3" in m.rows[1].error


def test_folder_with_sidecars(tmp_path):
    from PIL import Image

    for name in ("b.png", "a.jpg", "sub/c.webp", "d.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "a.txt").write_text("a red circle\n")
    (tmp_path / "b.txt").write_text("  a blue square ")
    (tmp_path / "sub/c.txt").write_text("two stars")
    (tmp_path / "d.txt").write_bytes(b"\xff\xfe bad")
    (tmp_path / "notes.txt").write_text("ignored: no image")
    m = read_manifest(tmp_path)
    assert m.kind == "folder"
    assert [r.fields["image"] for r in m.rows] == ["a.jpg", "b.png", "d.png", "sub/c.webp"]
    assert [r.prompt for r in m.rows] == ["a red circle", "a blue square", None, "two stars"]
    assert "not valid UTF-8" in m.rows[2].error
    (tmp_path / "b.txt").unlink()
    assert "sidecar b.txt is missing" in read_manifest(tmp_path).rows[1].error


def test_empty_folder(tmp_path):
    with pytest.raises(ManifestError, match="no images"):
        read_manifest(tmp_path)

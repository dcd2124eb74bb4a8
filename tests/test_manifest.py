"""Manifests in every format, the folder-with-sidecars layout, and broken rows kept with a reason.

Also the streamed manifest (``ManifestSource``): the same rows as ``read_manifest``, column types equal to one
``pa.array`` over all values, and memory that does not grow with the row count.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import pickle
import random
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipgauge.errors import ManifestError
from clipgauge.sources import ManifestReader, SourceRow, column_types, read_manifest
from clipgauge.sources import manifest as manifest_module
from clipgauge.sources.column_types import infer_arrow_types
from clipgauge.sources.detect import ManifestSource, open_source
from clipgauge.sources.shards import Selection


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


@pytest.mark.parametrize("read", [read_manifest, ManifestSource], ids=["whole", "streamed"])
@pytest.mark.parametrize(("name", "content", "match"), [
    ("nope.jsonl", None, "not found"),
    ("m.xlsx", "x", "unsupported manifest format"),
    ("bad.parquet", b"not parquet", "cannot read"),
    ("empty.csv", "", "empty"),
    ("header.csv", "image,prompt\n", "no 'image' column .columns: none"),
])
def test_unreadable_or_unknown_manifest(tmp_path, read, name, content, match):
    """Read whole or streamed, a bad manifest is refused when opened, with the same one-line reason."""
    path = tmp_path / name
    if content is not None:
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(ManifestError, match=match):
        read(path)


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
    assert "missing 'prompt'" in errors[7]  # invalid UTF-8 is read as U+FFFD (clipgauge.text): no error of its own
    assert m.rows[7].fields["image"] == "\ufffd"


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
    (tmp_path / "d.txt").write_bytes(b"\xff\xfe bad")  # not UTF-8: read with U+FFFD (clipgauge.text)
    (tmp_path / "notes.txt").write_text("ignored: no image")
    m = read_manifest(tmp_path)
    assert m.kind == "folder"
    assert [r.fields["image"] for r in m.rows] == ["a.jpg", "b.png", "d.png", "sub/c.webp"]
    assert [r.prompt for r in m.rows] == ["a red circle", "a blue square", "\ufffd\ufffd bad", "two stars"]
    assert [r.error for r in m.rows] == [None] * 4
    (tmp_path / "b.txt").unlink()
    assert "sidecar b.txt is missing" in read_manifest(tmp_path).rows[1].error


def test_empty_folder(tmp_path):
    with pytest.raises(ManifestError, match="no images"):
        read_manifest(tmp_path)


# --------------------------------------------------------------------------- streamed: ManifestSource


def broken_manifest(tmp_path, fmt):
    """A manifest of *fmt* with broken rows of every kind that format can have."""
    if fmt == "jsonl":
        lines = [json.dumps({"image": "1.png", "prompt": "ok", "seed": 1}), "{not json", "",
                 json.dumps({"image": "2.png", "prompt": None}), "   ", json.dumps({"image": "", "prompt": "x"}),
                 json.dumps({"image": "3.png", "prompt": 42, "seed": 2.5}), json.dumps(["a", "list"]),
                 json.dumps({"prompt": "no image key"}), json.dumps({"image": 7, "prompt": "p"}),
                 json.dumps({"image": str(tmp_path / "abs.png"), "prompt": "p", "extra": {"a": [1]}})]
        path = tmp_path / "m.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode() + b'{"image": "\xff"}\n')
    elif fmt in ("csv", "tsv"):
        d = "," if fmt == "csv" else "\t"
        text = (f"image{d}prompt{d}seed\n1.png{d}a cat{d}1\n2.png\n\n{d}  \n3.png{d}a dog{d}3{d}extra\n"
                f"{d}x{d}4\n\"q\nq.png\"{d}y{d}5\n4.png{d}{d}6\n")
        path = tmp_path / f"m.{fmt}"
        path.write_text(text)
    elif fmt == "parquet":  # more rows than one record batch
        n = manifest_module.BATCH_ROWS + 100
        path = tmp_path / "m.parquet"
        pq.write_table(pa.table({"image": [None if i % 7 == 3 else f"x/{i}.png" for i in range(n)],
                                 "prompt": [None if i % 5 == 1 else f"p{i % 3}" for i in range(n)],
                                 "v": [i / 2 for i in range(n)]}), path, row_group_size=1000)
    else:
        from PIL import Image

        path = tmp_path / "folder"
        for name in ("b.png", "a.jpg", "sub/c.webp", "d.png", "a-b/x.png", "a.b.png"):
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(path / name)
        (path / "a.txt").write_text("a red circle\n")
        (path / "sub/c.txt").write_text("two stars")
        (path / "d.txt").write_bytes(b"\xff bad")
    return path


def key(r):  # (a streamed row carries its path as text, a whole read as a Path: the same path)
    image = Path(r.image) if isinstance(r.image, str) else r.image
    return r.index, r.source, r.fields, image, r.prompt, r.error, r.skipped


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet", "folder"])
def test_streamed_source_yields_the_rows_of_read_manifest(tmp_path, fmt):
    path = broken_manifest(tmp_path, fmt)
    whole = read_manifest(path)
    assert all(isinstance(r, SourceRow) for r in whole.rows) and any(r.error for r in whole.rows)
    assert [r.index for r in whole.rows] == list(range(len(whole)))
    assert [r.source for r in whole.rows[:2]] == [f"{path.name}:0", f"{path.name}:1"]
    src = ManifestSource(path)
    rows = list(src.rows())
    assert [key(r) for r in rows] == [key(r) for r in whole.rows]
    assert src.count_rows() == [len(whole)] and src.columns == whole.columns
    assert src.base_dir == whole.base_dir == (path if fmt == "folder" else tmp_path)
    # a selection: placeholders elsewhere, the very same rows where selected
    got = list(src.rows(Selection(2, frozenset({1, 3}))))
    assert [r.index for r in got] == list(range(len(whole)))
    assert [key(r) for r in got if not r.skipped] == [key(r) for r in whole.rows if r.index // 2 in (1, 3)]
    # pickles small (no rows, no listing), before and after schema and fingerprint, and reads the same after
    src.schema(), src.fingerprint()
    assert len(pickle.dumps(src)) < 4000
    clone = pickle.loads(pickle.dumps(src))
    assert [key(r) for r in clone.rows()] == [key(r) for r in rows]
    assert clone.schema() == src.schema() and clone.fingerprint() == src.fingerprint()


def test_streamed_fingerprint_is_the_read_whole_one(tmp_path):
    folder = broken_manifest(tmp_path, "folder")
    listing = [(r.fields.get("image"), r.prompt) for r in read_manifest(folder).rows]
    fp = ManifestSource(folder).fingerprint()
    assert fp == {"kind": "manifest", "rows": 6, "sha256": None,
                  "listing_sha256": hashlib.sha256(json.dumps(listing, default=str).encode()).hexdigest()}
    path = broken_manifest(tmp_path, "jsonl")
    assert ManifestSource(path).fingerprint()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_streamed_source_refuses_a_bad_manifest_when_opened(tmp_path):
    write(tmp_path / "m.csv", [{"image": "1.png", "seed": 1}], "csv")
    with pytest.raises(ManifestError, match="no 'prompt' column"):
        open_source(tmp_path / "m.csv")
    (tmp_path / "m.tsv").write_bytes(b"image\tprompt\n1.png\t\xff\xfe\n")  # not UTF-8: read with U+FFFD
    assert [r.prompt for r in open_source(tmp_path / "m.tsv").rows()] == ["\ufffd\ufffd"]
    (tmp_path / "header.csv").write_text("image,prompt\n")
    with pytest.raises(ManifestError, match="no 'image' column .columns: none"):
        open_source(tmp_path / "header.csv")


def expected_type(values):
    """``pa.array(values).type``; text where that raises, or where it holds a struct without fields (all ``{}``),
    which Parquet cannot store."""
    try:
        t = pa.array(values).type
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.string()
    return pa.string() if "struct<>" in str(t) else t


def test_schema_equals_one_pa_array_per_column(tmp_path, monkeypatch):
    monkeypatch.setattr(column_types, "TYPE_CHUNK_ROWS", 3)  # many chunk boundaries in a small file
    rows = []
    for i in range(20):
        r = {"image": f"{i}.png", "prompt": f"p{i}", "int": i, "float": i + 0.5, "mixed": i if i < 10 else i / 4,
             "text": f"t{i}", "flag": i % 2 == 0, "none": None, "list": [i] if i < 12 else [i / 2, None],
             "dict": {"a": i} if i < 8 else {"b": str(i), "a": None}, "int_then_text": i if i < 9 else "x",
             "bool_then_int": True if i < 5 else i, "float_then_bool": 1.5 if i < 4 else False,
             "row_id": i}
        if i >= 15:
            r["late"] = 2.5
        if i % 4 == 1:
            r.pop("int")
        rows.append(r)
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    records = [dict(r) for r in rows] + [{"line": 21}]
    src = ManifestSource(path)
    expected = pa.schema([pa.field(c, expected_type([r.get(c) for r in records]))
                          for c in src.columns if c != "row_id"])
    assert src.schema() == expected
    lazy = ManifestReader(path, infer_types=False).arrow_types()  # the same types from a later pass
    assert [lazy[c] for c in src.schema().names] == src.schema().types
    got = {f.name: f.type for f in src.schema()}
    assert got["mixed"] == pa.float64() and got["int"] == pa.int64() and got["none"] == pa.null()
    assert got["list"] == pa.list_(pa.float64()) and got["line"] == pa.int64() and got["late"] == pa.float64()
    assert got["dict"] == pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert got["int_then_text"] == got["bool_then_int"] == pa.string() and got["float_then_bool"] == pa.float64()


POOLS = [
    [None, 1, 2, -7, 1.5, float("nan"), True, False, "x", "", [1, 2], [1.5], [], ["a"], {"a": 1}, {"b": "x"}],
    [None, 1, 3.5, 10**12, True],
    [None, "x", b"y", 1],
    [None, [1], [2.5], [None], [], [[1]], [{"k": 1}], [{"j": "s"}], ["s"]],
    [None, {"a": 1}, {"b": [1]}, {"a": 1.5, "b": [2.5]}, {"c": {"d": True}}, {"c": {"d": None}}, {}],
    [None, 1, 2**63, -1],
]


def test_streamed_types_equal_one_pa_array_on_random_columns():
    rng = random.Random(0)
    for _ in range(1500):
        pool = rng.choice(POOLS)
        kinds = rng.sample(pool, rng.randint(1, 4))
        values = [rng.choice(kinds) for _ in range(rng.randint(1, 30))]
        got = infer_arrow_types(["c"], ({"c": v} for v in values), chunk_rows=rng.randint(1, 8))["c"]
        assert got == expected_type(values), values


def test_streaming_memory_does_not_grow_with_rows(tmp_path, monkeypatch):
    """Opening and reading a manifest holds one row (and one chunk of rows for the types), never all rows."""
    monkeypatch.setattr(column_types, "TYPE_CHUNK_ROWS", 1000)
    path = tmp_path / "m.jsonl"
    with open(path, "w") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"image": f"img/{i:07d}.png", "prompt": "a photo of a cat", "seed": i,
                                 "model": f"model-{i % 3}"}) + "\n")
    pa.array([1])  # pyarrow imports pandas on its first conversion: not a cost of the rows
    gc.collect()
    tracemalloc.start()
    try:
        src = ManifestSource(path)
        n = sum(1 for r in src.rows() if r.image is not None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == src.n_rows == 20_000
    # read whole (a list of rows), these 20,000 rows take about 20 MB; streamed, under 1 MB
    assert peak < 3 * 2**20, peak


def test_row_paths_are_the_text_of_the_path_a_manifest_names(tmp_path):
    """A manifest row's image is kept as text (no Path per row): exactly ``str(Path(base) / image)``."""
    from clipgauge.paths import path_text

    names = ["a.jpg", "sub/b.jpg", "./c.jpg", "sub//d.jpg", "sub/./e.jpg", "sub/", "x/.", "..", "../f.jpg", ".",
             "g h.jpg", "//i.jpg"]
    for name in names + ["/abs/j.jpg", "a/b"]:
        assert path_text(name) == str(Path(name)), name
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"image": n, "prompt": "p"}) + "\n" for n in names))
    rows = list(ManifestReader(manifest).rows())
    assert [str(r.image) for r in rows] == [str(tmp_path / n) for n in names]


def test_absolute_and_home_paths_and_a_manifest_read_from_its_own_folder(tmp_path, monkeypatch):
    names = ["/abs/j.jpg", "~/k.jpg", "sub/l.jpg", "m.jpg"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"image": n, "prompt": "p"}) + "\n" for n in names))
    rows = list(ManifestReader(manifest).rows())
    assert [str(r.image) for r in rows] == [str(Path(names[0])), str(Path(names[1]).expanduser()),
                                            str(tmp_path / names[2]), str(tmp_path / names[3])]
    monkeypatch.chdir(tmp_path)  # base "." : the relative paths as written
    assert [str(r.image) for r in ManifestReader(Path("m.jsonl")).rows()][2:] == ["sub/l.jpg", "m.jpg"]


def test_image_cells_that_are_not_paths(tmp_path):
    rows = [{"image": 5, "prompt": "x"}, {"image": "   ", "prompt": "x"}, {"image": ["a"], "prompt": "x"},
            {"image": "ok.png", "prompt": "x"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors = [r.error for r in read_manifest(tmp_path / "m.jsonl").rows]
    assert errors == ["'image' is not a path (got int)", "missing 'image' value", "'image' is not a path (got list)",
                      None]

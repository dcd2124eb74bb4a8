"""Streaming row sources: brace patterns, WebDataset tars (incl. unsafe and corrupt ones), Parquet, HF datasets.

The helpers at the top (real tar and Parquet files) are also used by test_resumable.py and test_ray_engine.py.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PROMPTS, jpeg_bytes, random_rgb

from clipgauge.errors import UsageError
from clipgauge.sources.detect import ManifestSource, is_manifest_input, open_source
from clipgauge.sources.parquet import ParquetSource
from clipgauge.sources.shards import Selection, expand_braces, expand_input
from clipgauge.sources.webdataset import WebDatasetSource

# --------------------------------------------------------------------------- real test data

def add_member(tar: tarfile.TarFile, name: str, data: bytes, **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def sample(i: int, size=(64, 48)) -> tuple[bytes, str]:
    """Image bytes (JPEG, or PNG for every third) and the prompt of sample *i*."""
    img = random_rgb(i, size=size)
    if i % 3 == 2:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data = buf.getvalue()
    else:
        data = jpeg_bytes(img)
    return data, PROMPTS[i % len(PROMPTS)]


def write_wds(folder: Path, tars: int = 3, per_tar: int = 5, *, size=(64, 48),
              json_captions: bool = False) -> list[dict]:
    """WebDataset shards ``folder/00000.tar`` …: per sample ``KEY.jpg|png``, ``KEY.txt`` (or caption in .json)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = []
    for t in range(tars):
        with tarfile.open(folder / f"{t:05d}.tar", "w") as tar:
            for j in range(per_tar):
                i = t * per_tar + j
                key = f"{t:05d}{j:04d}"
                data, prompt = sample(i, size)
                ext = "png" if i % 3 == 2 else "jpg"
                add_member(tar, f"{key}.{ext}", data)
                meta = {"key": key, "url": f"http://example.com/{i}"}
                if json_captions:
                    meta["caption"] = prompt
                else:
                    add_member(tar, f"{key}.txt", prompt.encode())
                add_member(tar, f"{key}.json", json.dumps(meta).encode())
                # .txt captions lose surrounding whitespace, as sidecar prompts do; JSON captions are kept as is
                expected.append({"key": key, "prompt": prompt if json_captions else prompt.strip(), "image": data,
                                 "tar": f"{t:05d}.tar"})
    return expected


def write_parquet(path: Path, start: int, n: int, *, row_group_size: int = 4,
                  broken: tuple[int, ...] = ()) -> list[dict]:
    """An img2dataset-style Parquet file: key, caption, url, status, jpg (bytes; null where the download failed)."""
    rows = []
    for i in range(start, start + n):
        data, prompt = sample(i)
        ok = i not in broken
        rows.append({"key": f"{i:09d}", "caption": prompt, "url": f"http://example.com/{i}",
                     "status": "success" if ok else "failed_to_download", "jpg": data if ok else None})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return rows


# --------------------------------------------------------------------------- patterns

def test_brace_expansion():
    assert expand_braces("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
    assert expand_braces("a{1..3}") == ["a1", "a2", "a3"]
    assert expand_braces("x{a,b}/{0..1}.tar") == ["xa/0.tar", "xa/1.tar", "xb/0.tar", "xb/1.tar"]
    assert expand_braces("{08..10}") == ["08", "09", "10"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert expand_braces("odd{x}.tar") == ["odd{x}.tar"]


def test_expand_input_globs_and_braces(tmp_path):
    for name in ("b.tar", "a.tar", "c.parquet"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_input(str(tmp_path / "*.tar"))] == ["a.tar", "b.tar"]
    assert [p.name for p in expand_input(str(tmp_path / "{b,a}.tar"))] == ["b.tar", "a.tar"]


# --------------------------------------------------------------------------- WebDataset

def test_webdataset_rows_in_order_with_stable_ids(tmp_path):
    expected = write_wds(tmp_path / "wds", tars=3, per_tar=4)
    src = open_source(str(tmp_path / "wds" / "{00000..00002}.tar"))
    assert isinstance(src, WebDatasetSource) and src.units() == ["00000.tar", "00001.tar", "00002.tar"]
    rows = list(src.rows())
    assert [r.index for r in rows] == list(range(12))
    assert [r.fields["key"] for r in rows] == [e["key"] for e in expected]
    assert [r.prompt for r in rows] == [e["prompt"] for e in expected]
    assert [r.image for r in rows] == [e["image"] for e in expected]
    assert rows[5].source == "00001.tar:000010001" and json.loads(rows[5].fields["json"])["key"] == "000010001"
    assert all(r.error is None and not r.skipped for r in rows)
    assert src.count_rows() == [4, 4, 4]
    # a folder of tars is the same input
    assert [r.image for r in open_source(tmp_path / "wds").rows()] == [e["image"] for e in expected]


def test_webdataset_caption_from_json(tmp_path):
    expected = write_wds(tmp_path / "wds", tars=1, per_tar=3, json_captions=True)
    rows = list(open_source(tmp_path / "wds" / "00000.tar").rows())
    assert [r.prompt for r in rows] == [e["prompt"] for e in expected]
    rows = list(WebDatasetSource("x", [tmp_path / "wds" / "00000.tar"], prompt_key="url").rows())
    assert rows[0].prompt == "http://example.com/0"


def test_selection_reads_only_selected_rows(tmp_path):
    write_wds(tmp_path / "wds", tars=3, per_tar=4)
    src = open_source(tmp_path / "wds")
    full = list(src.rows())
    sel = Selection(5, frozenset({1}))  # rows 5..9, across the first and second tar
    rows = list(src.rows(sel))
    assert [r.index for r in rows] == list(range(12))  # placeholders keep the indices
    got = [r for r in rows if not r.skipped]
    assert [r.index for r in got] == [5, 6, 7, 8, 9]
    assert [r.image for r in got] == [full[i].image for i in range(5, 10)]
    assert all(r.image is None for r in rows if r.skipped)
    # with the row counts known, units without a selected row are not even opened
    counts = src.count_rows()
    rows = list(src.rows(Selection(5, frozenset({2})), counts=counts))
    assert [r.index for r in rows] == [8, 9, 10, 11]
    assert [r.index for r in rows if not r.skipped] == [10, 11]
    assert not any(r.index < 8 for r in rows)
    excluded = list(src.rows(Selection(5, exclude=frozenset({0, 2})), counts=counts))
    assert [r.index for r in excluded if not r.skipped] == [5, 6, 7, 8, 9]


def test_unsafe_members_become_error_rows(tmp_path):
    data, _ = sample(0)
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        add_member(tar, "good.jpg", data)
        add_member(tar, "good.txt", b"a cat")
        add_member(tar, "/etc/abs.jpg", data)
        add_member(tar, "/etc/abs.txt", b"x")
        add_member(tar, "../up.jpg", data)
        add_member(tar, "../up.txt", b"x")
        add_member(tar, "sub/../../esc.jpg", data)
        add_member(tar, "link.jpg", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add_member(tar, "link.txt", b"x")
        add_member(tar, "hard.jpg", b"", type=tarfile.LNKTYPE, linkname="good.jpg")
        add_member(tar, "hard.txt", b"x")
        add_member(tar, "last.jpg", data)
        add_member(tar, "last.txt", b"a dog")
    rows = list(open_source(path).rows())
    by_key = {r.fields["key"]: r for r in rows}
    assert by_key["good"].error is None and by_key["good"].prompt == "a cat"
    assert by_key["last"].error is None and by_key["last"].image == data
    assert "absolute path" in by_key["/etc/abs"].error
    assert "'..'" in by_key["../up"].error and "'..'" in by_key["sub/../../esc"].error
    assert "symbolic link" in by_key["link"].error and "hard link" in by_key["hard"].error
    assert all(r.image is None for r in rows if r.error)
    assert len(rows) == open_source(path).count_rows()[0] == 7
    assert list(tmp_path.iterdir()) == [path]  # nothing was extracted anywhere


def _corrupt_inputs(folder: Path) -> Path:
    """Five shards: good, truncated mid-member, garbage, a corrupt header mid-file, good; plus a missing one."""
    write_wds(folder, tars=5, per_tar=3)
    with tarfile.open(folder / "00001.tar") as tar:
        second_image = tar.getmembers()[3].offset_data
    t1 = (folder / "00001.tar").read_bytes()
    (folder / "00001.tar").write_bytes(t1[: second_image + 100])  # cut inside the second sample's image
    (folder / "00002.tar").write_bytes(b"this is not a tar file" * 50)
    t3 = bytearray((folder / "00003.tar").read_bytes())
    with tarfile.open(folder / "00003.tar") as tar:
        third_header = tar.getmembers()[3].offset
    t3[third_header: third_header + 100] = b"x" * 100
    (folder / "00003.tar").write_bytes(bytes(t3))
    return folder / "{00000..00005}.tar"


def test_corrupt_and_missing_shards_are_error_rows_not_crashes(tmp_path):
    pattern = _corrupt_inputs(tmp_path / "wds")
    src = open_source(str(pattern))
    rows = list(src.rows())
    counts = src.count_rows()
    assert [r.index for r in rows] == list(range(len(rows))) and sum(counts) == len(rows)
    by_unit: dict[str, list] = {}
    for r in rows:
        by_unit.setdefault(r.source.split(":")[0], []).append(r)
    assert [r.error for r in by_unit["00000.tar"]] == [None] * 3
    assert [r.error for r in by_unit["00004.tar"]] == [None] * 3
    t1 = by_unit["00001.tar"]
    assert t1[0].error is None and all(r.error for r in t1[1:]) and "corrupt" in t1[-1].error
    (garbage,) = by_unit["00002.tar"]
    assert garbage.error.startswith("corrupt shard 00002.tar: ReadError") and garbage.image is None
    t3 = by_unit["00003.tar"]
    assert t3[0].error is None and "invalid tar header" in t3[-1].error
    assert by_unit["00005.tar"][0].error == "shard not found: 00005.tar"
    # the row count never depends on what is read: a selection of everything but shard 0 gives the same indices
    again = list(src.rows(Selection(4, exclude=frozenset({0}))))
    assert [r.index for r in again] == [r.index for r in rows]
    assert [r.error for r in again if not r.skipped] == [r.error for r in rows if r.index >= 4]


def test_truncated_gzip_shard(tmp_path):
    write_wds(tmp_path / "wds", tars=1, per_tar=4)
    raw = gzip.compress((tmp_path / "wds" / "00000.tar").read_bytes())
    (tmp_path / "s.tar.gz").write_bytes(raw[: len(raw) * 2 // 3])
    src = open_source(tmp_path / "s.tar.gz")
    rows = list(src.rows())
    assert rows[0].error is None and "corrupt shard" in rows[-1].error
    assert src.count_rows() == [len(rows)]


def test_no_files_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="none of the 2 files"):
        open_source(str(tmp_path / "{0..1}.tar"))
    with pytest.raises(UsageError, match="input not found"):
        open_source(tmp_path / "nope.tar")


# --------------------------------------------------------------------------- Parquet

def test_parquet_img2dataset_layout(tmp_path):
    a = write_parquet(tmp_path / "p" / "a.parquet", 0, 10, broken=(3,))
    b = write_parquet(tmp_path / "p" / "b.parquet", 10, 5)
    src = open_source(tmp_path / "p")
    assert isinstance(src, ParquetSource) and src.image_column == "jpg" and src.prompt_column == "caption"
    assert src.schema().names == ["key", "caption", "url", "status"]  # image bytes are not carried
    rows = list(src.rows())
    expected = a + b
    assert [r.index for r in rows] == list(range(15)) and src.count_rows() == [10, 5]
    assert [r.image for r in rows if r.error is None] == [e["jpg"] for e in expected if e["jpg"] is not None]
    assert rows[3].error == "missing image" and rows[3].fields["status"] == "failed_to_download"
    assert rows[12].source == "b.parquet:2" and rows[12].prompt == expected[12]["caption"]
    # row groups of 4: a selection skips whole groups and still gives the same rows
    sel = list(src.rows(Selection(3, frozenset({2, 4})), counts=[10, 5]))
    got = [r for r in sel if not r.skipped]
    assert [r.index for r in got] == [6, 7, 8, 12, 13, 14]
    assert [r.image for r in got] == [rows[i].image for i in (6, 7, 8, 12, 13, 14)]


def test_parquet_paths_and_hf_image_structs(tmp_path):
    data, _ = sample(1)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.jpg").write_bytes(data)
    pq.write_table(pa.table({"image": ["imgs/x.jpg", None], "prompt": ["p", "q"]}), tmp_path / "paths.parquet")
    rows = list(open_source(tmp_path / "paths.parquet").rows())
    assert rows[0].image == tmp_path / "imgs" / "x.jpg" and rows[0].fields["image"] == "imgs/x.jpg"
    assert rows[1].error == "missing image"
    struct = pa.array([{"bytes": data, "path": None}, {"bytes": None, "path": "imgs/x.jpg"}],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"img": struct, "text": ["a", None]}), tmp_path / "hf.parquet")
    rows = list(open_source(tmp_path / "hf.parquet").rows())
    assert rows[0].image == data and rows[0].prompt == "a"
    assert rows[1].error == "missing 'text' value"


def test_parquet_column_errors_and_corrupt_file(tmp_path):
    pq.write_table(pa.table({"jpg": [b"x"], "title": ["t"]}), tmp_path / "a.parquet")
    with pytest.raises(UsageError, match="no prompt column .*--prompt-column"):
        open_source(tmp_path / "a.parquet")
    assert open_source(tmp_path / "a.parquet", prompt_column="title").prompt_column == "title"
    with pytest.raises(UsageError, match="no 'nope' column"):
        open_source(tmp_path / "a.parquet", image_column="nope")
    write_parquet(tmp_path / "d" / "0.parquet", 0, 3)
    (tmp_path / "d" / "1.parquet").write_bytes(b"PAR1 not really")
    src = open_source(tmp_path / "d")
    rows = list(src.rows())
    assert len(rows) == 4 and rows[3].error.startswith("corrupt Parquet file 1.parquet")
    assert src.count_rows() == [3, 1]


# --------------------------------------------------------------------------- HF datasets, manifests, detection

def test_hf_dataset_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the 'hf' extra (datasets) is not installed")
    images = [sample(i)[0] for i in range(5)]
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in images],
                                     "caption": [sample(i)[1] for i in range(5)], "n": list(range(5))},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "caption": datasets.Value("string"),
                                                                "n": datasets.Value("int64")}))
    ds.save_to_disk(str(tmp_path / "ds"))
    src = open_source(tmp_path / "ds")
    assert src.kind == "hf-dataset" and src.schema().names == ["caption", "n"]
    rows = list(src.rows())
    assert [r.image for r in rows] == images and [r.fields["n"] for r in rows] == list(range(5))
    assert [r.index for r in src.rows(Selection(2, frozenset({1}))) if not r.skipped] == [2, 3]
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    assert [r.image for r in open_source(tmp_path / "dd").rows()] == images
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd2"))
    with pytest.raises(UsageError, match="pass one of them"):
        open_source(tmp_path / "dd2")


def test_manifest_source_and_detection(image_set, tmp_path):
    folder, expected = image_set
    src = open_source(folder / "manifest.jsonl")
    assert isinstance(src, ManifestSource)
    rows = list(src.rows())
    assert [r.fields["id"] for r in rows] == [e["id"] for e in expected]
    assert str(rows[0].image) == str(folder / "img_0.png") and rows[0].source == "manifest.jsonl:0"
    assert is_manifest_input(folder / "manifest.jsonl") and is_manifest_input(folder)
    write_wds(tmp_path / "wds", tars=1, per_tar=1)
    assert not is_manifest_input(tmp_path / "wds") and not is_manifest_input(tmp_path / "wds" / "00000.tar")
    assert not is_manifest_input(str(tmp_path / "wds" / "{00000..00001}.tar"))
    assert np.array_equal(src.count_rows(), [len(expected)])


def test_resolve_path_against_the_input_folder(image_set, tmp_path):
    folder, _ = image_set
    src = open_source(folder / "manifest.jsonl")
    assert src.base_dir == folder and src.resolve_path("refs/a.png") == folder / "refs" / "a.png"
    assert src.resolve_path(str(tmp_path / "abs.png")) == tmp_path / "abs.png"
    assert src.resolve_path("~/x.png") == Path("~/x.png").expanduser()
    assert open_source(folder).resolve_path("a.png") == folder / "a.png"  # an image folder: that folder
    write_parquet(tmp_path / "p" / "a.parquet", 0, 2)
    write_parquet(tmp_path / "p" / "b.parquet", 2, 2)
    assert open_source(tmp_path / "p").resolve_path("r/x.png") == tmp_path / "p" / "r" / "x.png"
    write_wds(tmp_path / "w" / "s", tars=1, per_tar=1)
    wds = open_source(str(tmp_path / "w" / "s" / "{00000..00000}.tar"))
    assert wds.resolve_path("x.png") == tmp_path / "w" / "s" / "x.png"
    assert wds.resolve_path(str(tmp_path / "y.png")) == tmp_path / "y.png"

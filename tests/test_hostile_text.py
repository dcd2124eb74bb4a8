"""Text that cannot be encoded never kills a run (issue #20).

Lone UTF-16 surrogates (the valid JSON ``"broken emoji \\ud83d here"``) and bytes that are not UTF-8 are read by every
source as U+FFFD, scored on that text, and carried to the output as that text: each row scores what the same
prompt written with U+FFFD scores. A prompt the tokenizer refuses is that row's error, never the run's (a surrogate
given straight to the scorer, past the sources, is such a prompt). A property test feeds arbitrary JSON values and
unicode to the row path.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import jpeg_bytes, random_rgb
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clipgauge.cli import main

SURROGATE = "broken emoji \ud83d here"  # what json.loads gives for the line's "broken emoji \ud83d here"
SURROGATE_AS_FFFD = "broken emoji \ufffd here"
NOT_UTF8 = "café ".encode() + b"\xff" + " crème".encode()
NOT_UTF8_AS_FFFD = "café \ufffd crème"
WTF8 = SURROGATE.encode("utf-8", "surrogatepass")  # the surrogate's 3 bytes, as some tools write it: not UTF-8
WTF8_AS_FFFD = "broken emoji \ufffd\ufffd\ufffd here"  # each invalid byte one U+FFFD (errors="replace")


@pytest.fixture(scope="module")
def demo():
    from clipgauge import Scorer

    return Scorer("demo", device="cpu", batch_size=4)


@pytest.fixture()
def image(tmp_path) -> Path:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(random_rgb(3, size=(80, 64))))
    return path


def scored(capsys, spec, out: Path, *extra) -> list[dict]:
    """``clipgauge score SPEC --model demo --out OUT``: it finishes (exit 0, or 1 with row errors) without a
    traceback; the output's rows."""
    code = main(["score", str(spec), "--model", "demo", "--device", "cpu", "--batch-size", "4", "--out", str(out),
                 *map(str, extra)])
    _, err = capsys.readouterr()
    assert code in (0, 1), err
    assert "Traceback" not in err
    if out.suffix == ".parquet" or out.is_dir():
        return pq.read_table(out).to_pylist()
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def assert_scored_as(row: dict, text: str, image, demo) -> None:
    """*row* scored without error, its prompt column *text*, its cosine what the scorer gives *text*."""
    assert row["error"] is None, row["error"]
    assert row["prompt"] == text
    expected = float(demo.score([image], [text])[0])
    assert abs(row["cosine"] - expected) < 1e-5, (row["cosine"], expected)


# --------------------------------------------------------------------------- every source


@pytest.mark.parametrize("out_name", ["out.jsonl", "out.parquet", "results"])
def test_jsonl_lone_surrogates_are_scored_as_fffd_in_every_column(capsys, demo, image, tmp_path, out_name):
    lines = [
        json.dumps({"image": "a.jpg", "prompt": "a red circle", "empty": {}, "nested": [{"a": {}}]}).encode(),
        json.dumps({"image": "a.jpg", "prompt": SURROGATE}).encode(),  # ensure_ascii: the surrogate as \ud83d
        json.dumps({"image": "a.jpg", "prompt": "a blue square", "tags": ["x\udc00", {"k\ud800": "v\ud83d\ude00"}],
                    "note": "\udfff"}).encode(),  # other columns, nested, a key; a pair stays one character
        b'{"image": "a.jpg", "prompt": "' + NOT_UTF8 + b'", "note": "ok"}',
    ]
    (tmp_path / "m.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    rows = scored(capsys, tmp_path / "m.jsonl", tmp_path / out_name)
    assert len(rows) == 4
    assert_scored_as(rows[0], "a red circle", image, demo)
    assert_scored_as(rows[1], SURROGATE_AS_FFFD, image, demo)
    assert_scored_as(rows[2], "a blue square", image, demo)
    assert_scored_as(rows[3], NOT_UTF8_AS_FFFD, image, demo)
    tags = rows[2]["tags"]
    assert (json.loads(tags) if isinstance(tags, str) else tags) == ["x\ufffd", {"k\ufffd": "v\U0001f600"}]
    assert rows[2]["note"] == "\ufffd"
    assert rows[0]["empty"] == "{}" and json.loads(rows[0]["nested"]) == [{"a": {}}]  # Parquet stores no struct<>


@pytest.mark.parametrize("kind, sep", [("csv", b","), ("tsv", b"\t")])
def test_csv_and_tsv_with_bytes_that_are_not_utf8(capsys, demo, image, tmp_path, kind, sep):
    text = sep.join([b"image", b"prompt", b"note"]) + b"\n"
    for prompt, note in [(b"a red circle", b"ok"), (NOT_UTF8, b"ok"), (WTF8, b"n\xe9e"), (b"a blue square", b"\xff")]:
        text += sep.join([b"a.jpg", prompt, note]) + b"\n"
    (tmp_path / f"m.{kind}").write_bytes(text)
    rows = scored(capsys, tmp_path / f"m.{kind}", tmp_path / "out.jsonl")
    assert [r["note"] for r in rows] == ["ok", "ok", "n\ufffde", "\ufffd"]
    for row, prompt in zip(rows, ["a red circle", NOT_UTF8_AS_FFFD, WTF8_AS_FFFD, "a blue square"]):
        assert_scored_as(row, prompt, image, demo)


def test_image_folder_sidecars_that_are_not_utf8(capsys, demo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, prompt in [("a", b"a red circle"), ("b", NOT_UTF8), ("c", WTF8 + b"\n")]:
        (folder / f"{name}.jpg").write_bytes(jpeg_bytes(random_rgb(ord(name), size=(72, 64))))
        (folder / f"{name}.txt").write_bytes(prompt)
    rows = scored(capsys, folder, tmp_path / "out.jsonl")
    for row, name, prompt in zip(rows, "abc", ["a red circle", NOT_UTF8_AS_FFFD, WTF8_AS_FFFD], strict=True):
        assert_scored_as(row, prompt, folder / f"{name}.jpg", demo)


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_webdataset_txt_and_json_members(capsys, demo, image, tmp_path):
    data = image.read_bytes()
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for key, ext, text in [
            ("k0", "txt", b"a red circle"),
            ("k1", "txt", NOT_UTF8),
            ("k2", "json", json.dumps({"caption": SURROGATE, "other": ["\udc00"]}).encode()),
            ("k3", "json", b'{"caption": "' + NOT_UTF8 + b'"}'),
        ]:
            _member(tar, f"{key}.jpg", data)
            _member(tar, f"{key}.{ext}", text)
    rows = scored(capsys, tmp_path / "00000.tar", tmp_path / "out.jsonl")
    for row, prompt in zip(rows, ["a red circle", NOT_UTF8_AS_FFFD, SURROGATE_AS_FFFD, NOT_UTF8_AS_FFFD],
                           strict=True):
        assert_scored_as(row, prompt, image, demo)
    assert json.loads(rows[2]["json"]) == {"caption": SURROGATE, "other": ["\udc00"]}  # the member's text, as is
    assert json.loads(rows[3]["json"]) == {"caption": NOT_UTF8_AS_FFFD}


def _not_utf8_strings(values: list[bytes]) -> pa.Array:
    """A string column holding bytes that are not UTF-8 (Arrow does not check; some writers produce it)."""
    return pa.array(values, pa.binary()).view(pa.string())


@pytest.mark.parametrize("layout", ["paths", "bytes"])
def test_parquet_strings_that_are_not_utf8(capsys, demo, image, tmp_path, layout):
    prompts = [b"a red circle", NOT_UTF8, WTF8, b"a blue square"]
    images = ["a.jpg"] * 4 if layout == "paths" else pa.array([image.read_bytes()] * 4, pa.binary())
    table = pa.table({"image": images, "prompt": _not_utf8_strings(prompts),
                      "note": _not_utf8_strings([b"ok", b"ok", b"ok", b"n\xe9e"])})
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=2)
    rows = scored(capsys, tmp_path / "m.parquet", tmp_path / "out.jsonl")
    assert [r["note"] for r in rows] == ["ok", "ok", "ok", "n\ufffde"]
    for row, prompt in zip(rows, ["a red circle", NOT_UTF8_AS_FFFD, WTF8_AS_FFFD, "a blue square"], strict=True):
        assert_scored_as(row, prompt, image, demo)


def test_parquet_manifest_read_whole(tmp_path):
    from clipgauge.sources.manifest import read_manifest

    table = pa.table({"image": ["a.jpg", "b.jpg"], "prompt": _not_utf8_strings([b"ok", NOT_UTF8]),
                      "tags": pa.array([["x"], ["y"]], pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "m.parquet")
    rows = read_manifest(tmp_path / "m.parquet").rows
    assert [r.prompt for r in rows] == ["ok", NOT_UTF8_AS_FFFD] and [r.error for r in rows] == [None, None]


def test_hf_dataset_strings_that_are_not_utf8(capsys, demo, image, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the 'hf' extra (datasets) is not installed")
    prompts = [b"a red circle", NOT_UTF8, WTF8]
    table = pa.table({"image": pa.array([image.read_bytes()] * 3, pa.binary()), "caption": _not_utf8_strings(prompts)})
    datasets.Dataset(table).save_to_disk(str(tmp_path / "ds"))
    rows = scored(capsys, tmp_path / "ds", tmp_path / "out.jsonl")
    for row, prompt in zip(rows, ["a red circle", NOT_UTF8_AS_FFFD, WTF8_AS_FFFD], strict=True):
        assert row["error"] is None and row["caption"] == prompt
        assert abs(row["cosine"] - float(demo.score([image], [prompt])[0])) < 1e-5


def test_rows_cross_to_ray_actors_as_arrow(tmp_path):
    from clipgauge.engines.ray_engine import arrow_to_rows, rows_to_arrow
    from clipgauge.sources.detect import open_source

    (tmp_path / "m.jsonl").write_text(
        json.dumps({"image": "a.jpg", "prompt": SURROGATE, "tags": ["\udc00", {"k": "\ud800"}]}) + "\n", "utf-8")
    source = open_source(tmp_path / "m.jsonl")
    rows = list(source.rows())
    back = arrow_to_rows(rows_to_arrow(0, rows, source.schema()))
    assert back[0].prompt == SURROGATE_AS_FFFD and back[0].error is None
    tags = back[0].fields["tags"]
    assert (json.loads(tags) if isinstance(tags, str) else tags) == ["\ufffd", {"k": "\ufffd"}]


# --------------------------------------------------------------------------- a prompt the tokenizer refuses


def test_a_refused_prompt_fails_alone_in_the_text_table(demo):
    """Past the sources (which clean text), the tokenizer refuses a lone surrogate: a real TypeError."""
    from clipgauge.errors import RowError

    prompts = ["a red circle", SURROGATE, "a blue square", "\ud800"]
    failed: dict = {}
    demo.clear_text_cache()
    table = demo.texts.table(prompts, errors=failed)
    assert sorted(table) == ["a blue square", "a red circle"] and sorted(failed) == sorted([SURROGATE, "\ud800"])
    reason = failed[SURROGATE]
    assert reason.startswith("prompt cannot be tokenized: TypeError: ") and "\n" not in reason
    assert len(reason) <= 200
    expected = demo.embed_texts(["a red circle", "a blue square"])
    np.testing.assert_allclose(np.stack([table["a red circle"][0], table["a blue square"][0]]), expected, atol=1e-6)
    with pytest.raises(RowError) as info:
        demo.texts.table(prompts)
    assert info.value.index == 1 and info.value.reason == reason


def test_score_pairs_gives_a_refused_prompt_its_row_error(demo, image):
    from clipgauge.errors import RowError

    result = demo.score_pairs([image] * 4, ["a red circle", SURROGATE, None, "a red circle"])
    assert result.error[0] is None and result.error[3] is None and result.error[2] == "missing prompt"
    assert result.error[1].startswith("prompt cannot be tokenized: TypeError")
    assert np.isnan(result.cosine[1]) and result.cosine[0] == result.cosine[3]
    assert abs(result.cosine[0] - float(demo.score([image], ["a red circle"])[0])) < 1e-6
    with pytest.raises(RowError) as info:
        demo.score_pairs([image] * 2, ["a red circle", SURROGATE], strict=True)
    assert info.value.index == 1


def test_the_python_api_names_a_refused_prompt(demo):
    from clipgauge.errors import RowError

    with pytest.raises(RowError) as info:
        demo.embed_texts(["a red circle", "a blue square", SURROGATE])
    assert info.value.index == 2 and info.value.reason.startswith("prompt cannot be tokenized: TypeError")
    with pytest.raises(RowError) as info:
        demo.embed_texts(["a red circle", SURROGATE], languages=["en", "de"])
    assert info.value.index == 1
    failed: dict = {}
    table = demo.texts.keyed_table(["a red circle", SURROGATE], ["en", "de"], errors=failed)
    assert list(table) == [("a red circle", "en")] and list(failed) == [(SURROGATE, "de")]


def test_the_row_path_gives_a_refused_prompt_its_row_error(demo, image):
    """Rows made past the sources (a surrogate prompt and reference text): those rows get the tokenizer's reason,
    the others are scored, and the table is written (its text cells with U+FFFD)."""
    from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan
    from clipgauge.pipeline.score import score_rows
    from clipgauge.sources.shards import SourceRow

    options = ScoreOptions(model="demo", device="cpu", batch_size=4, metrics=["clip", "refclip_s:column=refs"])
    plan = ScoringPlan(options, embedders={"demo": demo}).load()
    prompts = ["a red circle", SURROGATE, "a blue square", "a red circle"]
    refs = [["a photo"], ["a photo"], ["x", "\udc00"], ["a photo"]]
    rows = [SourceRow(i, f"m:{i}", {"prompt": p, "refs": r}, image=str(image), prompt=p)
            for i, (p, r) in enumerate(zip(prompts, refs))]
    fields = pa.schema([("prompt", pa.string()), ("refs", pa.list_(pa.string()))])
    table = score_rows(plan, rows, plan.output_schema(fields)).to_pylist()
    assert [r["row_id"] for r in table] == [0, 1, 2, 3]
    assert table[0]["error"] is None and table[3]["error"] is None
    assert table[1]["error"].startswith("prompt cannot be tokenized: TypeError") and table[1]["cosine"] is None
    assert table[2]["error"].startswith("'refs': prompt cannot be tokenized: TypeError")
    assert abs(table[2]["cosine"] - float(demo.score([image], ["a blue square"])[0])) < 1e-6  # its own score stays
    assert abs(table[0]["cosine"] - float(demo.score([image], ["a red circle"])[0])) < 1e-6
    assert table[1]["prompt"] == SURROGATE_AS_FFFD and table[2]["refs"] == ["x", "\ufffd"]


# --------------------------------------------------------------------------- property: the row path takes anything

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
ODD = st.sampled_from(["\x00", "\u202e", "\u202c", "\u200f", "\u061c", "\ufeff", "\ufffd", "\n", "\r", "\t", "\\",
                       '"', "},{", "\U0001f600", "\ud83d\ude00", "é", "日本", "𝔘"])
TEXT = st.lists(st.one_of(st.characters(), SURROGATES, ODD), max_size=24).map("".join)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=6)
ROW = st.fixed_dictionaries({"image": st.one_of(st.just("a.jpg"), TEXT, JSON), "prompt": st.one_of(TEXT, JSON)},
                            optional={"extra": JSON, "more": st.dictionaries(TEXT, JSON, max_size=2)})
MEGABYTE = 2**20


def as_fffd(text: str) -> str:
    """*text* with each lone surrogate as U+FFFD (pairs joined), the rule every source applies."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@pytest.fixture(scope="module")
def row_path(demo, tmp_path_factory):
    """One loaded plan (the demo model, the default metrics) and a folder with ``a.jpg``, reused by every example."""
    from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan

    folder = tmp_path_factory.mktemp("hostile")
    (folder / "a.jpg").write_bytes(jpeg_bytes(random_rgb(5, size=(72, 60))))
    return ScoringPlan(ScoreOptions(model="demo", device="cpu", batch_size=4), embedders={"demo": demo}).load(), folder


def _flatten(row: dict) -> dict:
    more = row.pop("more", None) or {}
    return {**more, **row}  # arbitrary keys become columns (clashes with the run's own names included)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=st.lists(ROW, min_size=1, max_size=4))
@example(rows=[{"image": "a.jpg", "prompt": "", "extra": {}, "more": {"": [{}], "cosine": "x", "row_id": None}}])
@example(rows=[{"image": "a.jpg", "prompt": "broken emoji \ud83d here " * (MEGABYTE // 24)},
               {"image": "x\ud800" * MEGABYTE, "prompt": "\x00\u202e" * 16, "extra": ["\udc00" * MEGABYTE]},
               {"image": "a.jpg", "prompt": "a red circle"}])
def test_every_row_comes_back_whatever_its_text(row_path, rows):
    from clipgauge.pipeline.score import score_rows
    from clipgauge.sinks.file import jsonl_bytes
    from clipgauge.sources.detect import open_source

    plan, folder = row_path
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(_flatten(dict(r)), ensure_ascii=True) + "\n" for r in rows),
                        encoding="ascii")
    source = open_source(manifest)
    read = list(source.rows())
    table = score_rows(plan, read, plan.output_schema(source.schema()))
    assert table.column("row_id").to_pylist() == list(range(len(rows)))  # every row, in order
    for i, r in enumerate(table.select(["prompt", "cosine", "error"]).to_pylist()):
        assert (r["error"] is None) == (r["cosine"] is not None), (i, r)
        if isinstance(rows[i]["prompt"], str) and rows[i]["image"] == "a.jpg":
            assert r["error"] is None and r["prompt"] == as_fffd(rows[i]["prompt"])
    assert len(jsonl_bytes(table).decode("utf-8").splitlines()) == len(rows)  # both writers take every cell
    pq.write_table(table, io.BytesIO())

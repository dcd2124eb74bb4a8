"""The sink seam (issue #21): a new output format is one class plus a registration, and it works with
``score --out FILE`` (local and Ray), ``score --out DIR`` then ``filter``, ``filter`` of a file, ``report`` and every
reader of results; filtering is one implementation for files and folders in both directions of "better"; tracker
writers are registered the same way.

Real runs of the shipped demo CLIP. The new format, gzip-compressed JSON lines (``.ndjson.gz``), is defined here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import score_on_ray
from PIL import Image

from clipgauge.atomic import AtomicFile
from clipgauge.cli import main
from clipgauge.metrics import register_metric, unregister_metric
from clipgauge.sinks import ResultsReader, Sink, read_results, register_sink
from clipgauge.sinks.filter_run import filter_results
from clipgauge.sinks.formats import jsonl_bytes
from clipgauge.sinks.records import records_table
from clipgauge.stats.filtering import filter_rows
from test_metric_workflows import Darkness  # a lower-is-better metric defined outside the package


# --------------------------------------------------------------------------- the new format: one class
@register_sink
class GzipJSONLSink(Sink):
    """JSON lines, gzip-compressed (the same lines as ``.jsonl``)."""

    name = "ndjson.gz"
    extensions = (".ndjson.gz",)

    def __init__(self, path, schema=None, *, run=None):
        super().__init__(path, schema, run=run)
        self.target, self.fh = AtomicFile(self.path), None

    def _open(self):
        if self.fh is None:
            self.fh = gzip.GzipFile(self.target.tmp, "wb", mtime=0)

    def write(self, table, part=None):
        self._open()
        self.fh.write(jsonl_bytes(table))

    def commit(self):
        self._open()
        self.fh.close()
        self.target.commit()
        self.committed = True

    def abort(self):
        if self.fh is not None:
            self.fh.close()
        self.target.abort()

    @classmethod
    def read_records(cls, path):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    @classmethod
    def read(cls, path):
        yield records_table(cls.read_records(path))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sink_seam")
    rows = []
    for i in range(9):
        Image.new("RGB", (40, 32), (25 * i, 200 - 20 * i, 90)).save(root / f"i{i}.png")
        rows.append({"id": i, "image": f"i{i}.png", "prompt": f"a {['red', 'green', 'blue'][i % 3]} square"})
    rows.append({"id": 9, "image": "missing.png", "prompt": "gone"})  # an error row: kept in outputs, never kept
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    register_metric(Darkness)
    try:
        for out in ("r.jsonl", "r.ndjson.gz", "dir"):
            code = main(["score", str(root / "m.jsonl"), "--model", "demo", "--device", "cpu", "--metric", "clip",
                         "--metric", "darkness", "--shard-size", "4", "--out", str(root / out)])
            assert code == 1  # the missing image
        yield root
    finally:
        unregister_metric("darkness")


def _plain(rows):
    return [{k: v for k, v in r.items() if k not in ("row_id", "row_source")} for r in rows]


def test_score_out_file_in_the_new_format(data):
    gz = data / "r.ndjson.gz"
    assert gz.is_file() and (data / "r.ndjson.gz.summary.json").is_file()
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    with gzip.open(gz, "rb") as fh:
        assert fh.read() == (data / "r.jsonl").read_bytes()  # the same lines as the built-in JSONL
    assert read_results(gz) == read_results(data / "r.jsonl")
    assert ResultsReader(gz).records()[9]["error"]


def test_filter_a_folder_and_a_file_into_the_new_format(data, tmp_path):
    assert main(["filter", str(data / "dir"), "--top-fraction", "0.5", "--out", str(tmp_path / "k.ndjson.gz"),
                 "--dropped", str(tmp_path / "d.ndjson.gz")]) == 0
    kept, dropped = read_results(tmp_path / "k.ndjson.gz"), read_results(tmp_path / "d.ndjson.gz")
    records = read_results(data / "r.jsonl")
    want = filter_rows(records, top_fraction=0.5)
    assert [r["id"] for r in kept] == [records[i]["id"] for i in want.kept] and len(kept) == 5
    assert sorted(r["id"] for r in kept + dropped) == list(range(10))
    assert main(["filter", str(data / "r.ndjson.gz"), "--min-score", "-1", "--out", str(tmp_path / "f.ndjson.gz")]) == 0
    assert _plain(read_results(tmp_path / "f.ndjson.gz")) == [r for r in records if not r["error"]]


@pytest.mark.parametrize("source", ["dir", "r.jsonl", "r.ndjson.gz"])
def test_top_fraction_of_a_lower_is_better_metric_from_any_input(data, tmp_path, source):
    out = tmp_path / "kept.jsonl"
    assert main(["filter", str(data / source), "--metric", "darkness", "--top-fraction", "0.25",
                 "--out", str(out)]) == 0
    records = read_results(data / "r.jsonl")
    dark = [(r["darkness"], r["id"]) for r in records if not r["error"]]
    best = sorted(i for _, i in sorted(dark)[:3])  # ceil(0.25 · 9) = 3 lowest
    assert [r["id"] for r in read_results(out)] == best


def test_one_filter_for_files_and_folders(data, tmp_path):
    records = read_results(data / "r.jsonl")
    for kw in ({"top_fraction": 0.4}, {"top_fraction": 0.4, "higher_is_better": False}, {"min_score": 0.0}):
        want = filter_rows(records, column="darkness", **kw)
        for source in ("dir", "r.jsonl", "r.ndjson.gz"):
            got = filter_results(data / source, tmp_path / f"{source}.parquet", column="darkness", **kw)
            assert (got.n_kept, got.threshold, got.unscored) == (want.n_kept, want.threshold, want.unscored)
            kept = read_results(tmp_path / f"{source}.parquet")
            assert [r["id"] for r in kept] == [records[i]["id"] for i in want.kept], (source, kw)


def test_report_reads_the_new_format(data, tmp_path):
    html = tmp_path / "report.html"
    assert main(["report", str(data / "r.ndjson.gz"), "--out", str(html), "--max-images", "0"]) == 0
    assert "darkness" in html.read_text(encoding="utf-8")


def test_an_unknown_output_names_the_registered_formats(data, tmp_path, capsys):
    assert main(["score", str(data / "m.jsonl"), "--model", "demo", "--out", str(tmp_path / "r.xlsx")]) == 2
    err = capsys.readouterr().err
    assert "unsupported output format '.xlsx'" in err and ".ndjson.gz" in err and ".parquet" in err


def test_tracker_writers_are_registered_the_same_way(tmp_path):
    from clipgauge.track.writers import WriterKind, make_writer, register_writer_kind

    class Memory:
        def __init__(self, name):
            self.name, self.results = name, []

        def write(self, result):
            self.results.append(result)

    register_writer_kind(WriterKind("memory", Memory, "memory:NAME", prefixes=("memory",)))
    writer, made_here = make_writer("memory:run1")
    assert isinstance(writer, Memory) and writer.name == "run1" and made_here
    assert type(make_writer(str(tmp_path / "t.csv"))[0]).__name__ == "CSVWriter"
    with pytest.raises(Exception, match="memory:NAME"):
        make_writer("nothing:here")


def test_ray_writes_the_new_format(data, tmp_path):
    assert score_on_ray(Darkness, data / "m.jsonl", tmp_path / "ray.ndjson.gz", shard_size=4) == 1
    got, want = read_results(tmp_path / "ray.ndjson.gz"), read_results(data / "r.jsonl")
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert np.allclose([r["cosine"] or np.nan for r in got], [r["cosine"] or np.nan for r in want], equal_nan=True)

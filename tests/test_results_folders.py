"""compare, select, sweep and report read a sharded results folder (``score --out DIR``) like a results file."""

from __future__ import annotations

import json

import pytest

from clipgauge.cli import main
from clipgauge.sinks import read_results


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def scored(capsys, hf_model_dir, image_set, tmp_path):
    """The same manifest scored into a results file and into a results folder of 3-row parts."""
    folder, _ = image_set
    model = ["--model", f"hf:{hf_model_dir}", "--device", "cpu"]
    assert run(capsys, "score", folder / "manifest.jsonl", *model, "--out", tmp_path / "one.jsonl")[0] == 0
    assert run(capsys, "score", folder / "manifest.jsonl", *model, "--out", tmp_path / "parts",
               "--shard-size", 3)[0] == 0
    assert len(list((tmp_path / "parts").glob("part-*.parquet"))) == 3
    return tmp_path / "one.jsonl", tmp_path / "parts"


def test_read_results_of_a_folder_is_every_row_in_order(scored):
    single, parts = scored
    a, b = read_results(single), read_results(parts)
    assert [r["id"] for r in b] == [r["id"] for r in a]
    assert [r["cosine"] for r in b] == pytest.approx([r["cosine"] for r in a], abs=1e-6)
    assert "image_embedding" not in b[0]


def test_compare_select_sweep_and_report_accept_a_folder(capsys, scored, tmp_path):
    single, parts = scored
    code, out, _ = run(capsys, "compare", single, parts, "--key", "id", "--json")
    assert code == 0
    doc = json.loads(out)
    assert [r["n"] for r in doc["runs"]] == [8, 8]  # both runs: all 8 rows
    assert abs(doc["runs"][0]["mean"] - doc["runs"][1]["mean"]) < 1e-6
    for command in (["select", "--group-by", "prompt"], ["sweep", "--param", "cfg"]):
        outs = []
        for results in (single, parts):
            code, out, _ = run(capsys, command[0], results, *command[1:], "--json")
            assert code == 0
            outs.append(json.loads(out))
        assert outs[0]["groups" if command[0] == "select" else "rows"]  # something was computed ...
        assert _close(outs[1], outs[0])  # ... and the folder gives what the file gives
    code, _, err = run(capsys, "report", parts, "--out", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    weights = json.loads((parts / "_summary.json").read_text())["provenance"]["model"]["weights_sha256"]
    assert "parts" in html and weights[:12] in html  # the run's name and its provenance (from _summary.json)


def _close(a, b) -> bool:
    """Equal JSON documents, floats to 1e-6 (the two runs' cosines agree to that), but for the input's name."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a if k != "file")
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= 1e-6
    return a == b


def test_an_unfinished_folder_is_one_clear_line(capsys, scored):
    _, parts = scored
    doc = json.loads((parts / "_run.json").read_text())
    doc["complete"] = False
    (parts / "_run.json").write_text(json.dumps(doc))
    code, _, err = run(capsys, "compare", parts, parts, "--key", "id")
    assert code == 2
    assert err.strip().count("\n") == 0 and "not finished" in err and "run the same 'clipgauge score'" in err


def test_a_plain_folder_is_one_clear_line(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "select", tmp_path / "empty")
    assert code == 2 and "not a clipgauge results folder" in err

"""Every output file appears whole under its final name, or not at all, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from clipgauge.atomic import AtomicFile, file_mode, write_atomic
from clipgauge.sinks import write_results, write_summary


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("durable", [False, True])
def test_write_atomic_replaces_whole_with_ordinary_permissions(tmp_path, durable):
    target = tmp_path / "sub" / "out.json"
    write_atomic(target, "first", durable=durable)
    write_atomic(target, b"second", durable=durable)
    assert target.read_text() == "second"
    assert stat.S_IMODE(target.stat().st_mode) == file_mode()  # not mkstemp's owner-only 0600
    assert _leftovers(target.parent) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), AtomicFile(target) as t:
        with open(t.tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_results_and_summary_are_written_atomically(tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    write_results(out, [{"a": 1}], ["a"])
    write_summary(tmp_path / "r.jsonl.summary.json", {"rows": 1, "mean": float("nan")})
    assert (tmp_path / "r.jsonl.summary.json").read_text().startswith("{")

    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_summary(tmp_path / "r.jsonl.summary.json", {"rows": 2})
    assert '"rows": 1' in (tmp_path / "r.jsonl.summary.json").read_text()  # the old one, whole
    assert _leftovers(tmp_path) == []

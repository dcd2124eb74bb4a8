"""compare, select, sweep and filter work on any metric (--metric NAME), with its declared better direction;
select ranks by one metric subject to floors on others (--floor clip>=X)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipgauge.cli import main
from clipgauge.decode import load_image
from clipgauge.metrics import Column, Metric, MetricOutput, Need, register_metric, unregister_metric
from clipgauge.sinks import read_results
from clipgauge.stats.records import key_value


class Darkness(Metric):
    """1 − mean brightness of the decoded image, in [0, 1]: lower is better (a declared direction)."""

    name = "darkness"
    summary = "1 - mean brightness (lower is better)"

    def needs(self):
        return [Need("image")]

    def columns(self):
        return [Column("darkness", range=(0.0, 1.0), unit="1 - brightness", higher_is_better=False)]

    def compute(self, batch):
        images = batch.values[Need("image")]
        return MetricOutput({"darkness": np.array(
            [np.nan if im is None else 1 - np.asarray(im, dtype=np.float64).mean() / 255 for im in images])})


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def scored(capsys, hf_model_dir, image_set, tmp_path):
    register_metric(Darkness)
    try:
        folder, rows = image_set
        out = tmp_path / "r.jsonl"
        code, _, err = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--device",
                           "cpu", "--metric", "clip", "--metric", "darkness", "--out", out)
        assert code == 0, err
        records = read_results(out)
        expected = [1 - np.asarray(load_image(folder / r["image"]), dtype=np.float64).mean() / 255 for r in rows]
        np.testing.assert_allclose([r["darkness"] for r in records], expected, atol=1e-12)
        # the summary correlates the metrics' scores (Spearman, checked against scipy)
        from scipy.stats import spearmanr

        pairs = json.loads(out.with_name("r.jsonl.summary.json").read_text())["correlations"]["pairs"]
        assert [(p["a"], p["b"]) for p in pairs] == [("cosine", "darkness")]
        rho = spearmanr([r["cosine"] for r in records], [r["darkness"] for r in records]).statistic
        assert pairs[0]["n"] == len(records) and abs(pairs[0]["rho"] - rho) < 1e-12
        yield out, records
    finally:
        unregister_metric("darkness")


def test_select_takes_the_declared_direction_and_floors(capsys, scored, tmp_path):
    out, records = scored
    code, stdout, err = run(capsys, "select", out, "--group-by", "prompt", "--metric", "darkness", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if key_value(r["prompt"]) is not None:  # groups by the normalised key; an empty prompt has none
            groups.setdefault(key_value(r["prompt"]), []).append(i)
    chosen = {tuple(g["key"]): g["chosen"][0]["row"] for g in doc["groups"]}
    for prompt, idx in groups.items():
        assert chosen[(prompt,)] == min(idx, key=lambda i: records[i]["darkness"])  # the darkest is the worst
    # the least dark image among those whose CLIP cosine is at least the median
    floor = float(np.median([r["cosine"] for r in records]))
    code, stdout, err = run(capsys, "select", out, "--group-by", "prompt", "--metric", "darkness", "--floor",
                            f"clip>={floor}", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    for g in doc["groups"]:
        if g["key"][0] not in groups:
            continue
        eligible = [i for i in groups[g["key"][0]] if records[i]["cosine"] >= floor]
        if eligible:
            assert g["chosen"][0]["row"] == min(eligible, key=lambda i: records[i]["darkness"])
        else:
            assert g["chosen"] == []
    assert doc["below_floor"] == sum(r["cosine"] < floor for r in records)
    code, _, err = run(capsys, "select", out, "--group-by", "prompt", "--floor", "clip>0.2")
    assert code == 2 and "METRIC>=VALUE" in err


def test_sweep_filter_compare_take_the_direction(capsys, scored, tmp_path):
    out, records = scored
    code, stdout, err = run(capsys, "sweep", out, "--param", "cfg", "--metric", "darkness", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    best = min(records, key=lambda r: r["darkness"])
    assert float(doc["peak_value"]) == best["cfg"]  # one image per cfg value: the peak is the lowest darkness
    code, _, err = run(capsys, "filter", out, "--metric", "darkness", "--top-fraction", 0.5, "--out",
                       tmp_path / "kept.jsonl")
    assert code == 0, err
    kept = read_results(tmp_path / "kept.jsonl")
    cut = sorted(r["darkness"] for r in records)[len(records) // 2 - 1]
    assert len(kept) == len(records) // 2 and all(r["darkness"] <= cut for r in kept)
    code, stdout, err = run(capsys, "compare", out, out, "--key", "id", "--metric", "darkness", "--json")
    assert code == 0, err
    assert "Lower is better" in json.loads(stdout)["pairs"][0]["sentence"]
    code, _, err = run(capsys, "select", out, "--group-by", "prompt", "--metric", "nope")
    assert code == 2 and "declares a metric or column 'nope'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "select", out, "--group-by", "prompt", "--metric", "clip", "--column", "cosine")
    assert code == 2 and "not both" in err

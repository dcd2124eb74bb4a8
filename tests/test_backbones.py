"""clipgauge backbones: the shipped demo CLIP against a tiny real HF CLIP on the same rows, in one run.

Correlations are checked against scipy on the per-row scores read back from the results file; the HF backbone's
column against transformers itself; system agreement and the disagreement rows against direct computations.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
from conftest import random_rgb, reference_hf_cosines
from scipy.stats import kendalltau, rankdata, spearmanr

from clipgauge.cli import main

SYSTEMS = ["sd15", "sdxl", "flux"]
LABELS = ["circle", "square", "star", "cat"]
PROMPTS = ["a red circle", "two blue squares", "a green star above a yellow circle", "a photo of a cat"]


@pytest.fixture(scope="module")
def compared(hf_model_dir, tmp_path_factory):
    """One backbones run (module-wide): 9 images, 3 systems, demo vs the tiny HF CLIP."""
    folder = tmp_path_factory.mktemp("bb_in")
    rows = []
    for i in range(9):
        random_rgb(i, size=(64 + 8 * i, 90)).save(folder / f"img_{i}.png")
        rows.append({"image": f"img_{i}.png", "prompt": PROMPTS[i % 4], "system": SYSTEMS[i % 3],
                     "label": LABELS[i % 4]})
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    out = tmp_path_factory.mktemp("bb")
    code = main(["backbones", str(folder / "manifest.jsonl"), "--model", "demo", "--model", f"hf:{hf_model_dir}",
                 "--device", "cpu", "--batch-size", "3", "--system-column", "system", "--top", "3",
                 "--out", str(out / "results.jsonl"), "--report", str(out / "report.html"),
                 "--json", str(out / "doc.json")])
    assert code == 0
    doc = json.loads((out / "doc.json").read_text())
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return folder, rows, doc, results, out


def test_correlations_equal_scipy_on_the_per_row_scores(compared, hf_model_dir):
    folder, rows, doc, results, _ = compared
    assert len(results) == len(rows) == doc["rows"]
    a = np.array([r["cosine_b0"] for r in results], dtype=float)
    b = np.array([r["cosine_b1"] for r in results], dtype=float)
    assert not np.isnan(a).any() and not np.isnan(b).any()
    (pair,) = doc["correlations"]
    assert (pair["a"], pair["b"], pair["n"]) == ("b0", "b1", len(rows))
    assert pair["spearman"] == pytest.approx(spearmanr(a, b)[0], abs=1e-12)
    assert pair["kendall_tau_b"] == pytest.approx(kendalltau(a, b)[0], abs=1e-12)
    # the second backbone's column is that model's own CLIP score (transformers as the reference)
    ref = reference_hf_cosines(hf_model_dir, [folder / r["image"] for r in rows], [r["prompt"] for r in rows])
    np.testing.assert_allclose(b, ref, atol=1e-4)
    assert [bb["model"] for bb in doc["backbones"]] == ["demo", f"hf:{hf_model_dir}"]


def test_speed_load_and_memory_measured_per_backbone_in_the_same_run(compared):
    _, rows, doc, _, _ = compared
    for bb in doc["backbones"]:
        t = bb["timing"]
        assert t["images"] == len(rows) and t["image_s"] > 0
        assert t["images_per_s"] == pytest.approx(t["images"] / t["image_s"], rel=1e-12)
        assert t["load_s"] > 0 and t["texts"] == len({r["prompt"] for r in rows})
        assert t["weights_bytes"] > 0 and t["device"] == "cpu"
    demo, hf = (bb["timing"]["weights_bytes"] for bb in doc["backbones"])
    assert demo != hf  # two different models were measured, not one twice


def test_system_rankings_and_sign_agreement_match_a_direct_count(compared):
    _, _, doc, results, _ = compared
    systems = doc["systems"]
    assert systems["systems"] == sorted(SYSTEMS)
    means = {n: {s: np.mean([r[f"cosine_{n}"] for r in results if r["system"] == s]) for s in sorted(SYSTEMS)}
             for n in ("b0", "b1")}
    for n in means:
        for s in SYSTEMS:
            assert systems["means"][n][s] == pytest.approx(means[n][s], abs=1e-12)
    x, y = ([means[n][s] for s in sorted(SYSTEMS)] for n in ("b0", "b1"))
    assert systems["ranking_tau"][0]["kendall_tau_b"] == pytest.approx(kendalltau(x, y)[0], abs=1e-12)
    agree = sum(np.sign(means["b0"][s] - means["b0"][t]) == np.sign(means["b1"][s] - means["b1"][t])
                for s, t in combinations(sorted(SYSTEMS), 2))
    assert systems["system_pairs"] == 3
    assert systems["sign_agreement"] == pytest.approx(agree / 3)


def test_disagreement_rows_are_the_largest_rank_percentile_spreads_and_the_report_shows_them(compared):
    _, rows, doc, results, out = compared
    n = len(results)
    pa = rankdata([r["cosine_b0"] for r in results]) / n
    pb = rankdata([r["cosine_b1"] for r in results]) / n
    spread = np.abs(pa - pb)
    top = doc["disagreements"]
    assert len(top) == 3
    assert [d["spread"] for d in top] == pytest.approx(sorted(spread, reverse=True)[:3], abs=1e-12)
    for d in top:
        assert spread[d["index"]] == pytest.approx(d["spread"], abs=1e-12)
        assert d["prompt"] == rows[d["index"]]["prompt"]
    html = (out / "report.html").read_text()
    for title in ("Backbones: speed and memory", "Agreement of per-row scores", "Agreement on systems",
                  "Rows the backbones disagree on most"):
        assert title in html
    assert html.count('<img src="data:image/jpeg;base64,') == 3
    assert "Zero-shot accuracy and recall@k" not in html  # not asked for


def test_zero_shot_accuracy_and_recall_per_backbone_are_those_of_classify_and_retrieve(
        compared, hf_model_dir, openclip_checkpoint, tmp_path):
    """Two tiny backbones (HF and OpenCLIP formats) with labels and recall: each backbone's numbers are what
    clipgauge.classify and clipgauge.retrieve give for that model alone."""
    from tiny_clip import TINY_OPENCLIP_ARCH

    from clipgauge import ScoreOptions, compare_backbones
    from clipgauge.report.evaluation import backbones_report
    from clipgauge.zeroshot.classify import classify
    from clipgauge.zeroshot.retrieve import retrieve

    folder, rows, _, _, _ = compared
    specs = [f"hf:{hf_model_dir}", f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}"]
    doc = compare_backbones(folder / "manifest.jsonl", specs, options=ScoreOptions(device="cpu"), top=0,
                            labels=LABELS, truth="label", recall=True).to_dict()
    hf = doc["backbones"][0]
    alone = classify(folder / "manifest.jsonl", LABELS, truth="label", model=specs[0],
                     options=ScoreOptions(device="cpu"))
    assert hf["zeroshot"]["n"] == len(rows)
    assert hf["zeroshot"]["top1"] == pytest.approx(alone.summary["classification"]["top1"], abs=1e-12)
    found = retrieve(folder / "manifest.jsonl", model=specs[0], evaluate=True, device="cpu")
    assert hf["recall"]["text_to_image"] == pytest.approx(found.recall["text_to_image"], abs=1e-12)
    assert hf["recall"]["image_to_text"] == pytest.approx(found.recall["image_to_text"], abs=1e-12)
    for b in doc["backbones"]:
        assert 0 <= b["zeroshot"]["top1"] <= b["zeroshot"]["top5"] <= 1
    assert doc["disagreements"] == []
    html = backbones_report(doc, tmp_path / "r.html").read_text()
    assert "Zero-shot accuracy and recall@k" in html


def test_labels_without_truth_is_refused():
    from clipgauge import compare_backbones
    from clipgauge.errors import UsageError

    with pytest.raises(UsageError, match="both labels and the column"):
        compare_backbones("m.jsonl", ["demo", "other"], labels=["a", "b"])


@pytest.mark.parametrize("args, message", [
    (["--model", "demo"], "at least two models"),
    (["--model", "demo", "--model", "demo"], "given twice"),
    (["--model", "demo", "--model", "hf:/nonexistent/clip", "--system-column", "nope"], "no 'nope' column"),
])
def test_bad_input_is_one_line(image_set, capsys, args, message):
    folder, _ = image_set
    code = main(["backbones", str(folder / "manifest.jsonl"), "--device", "cpu", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("clipgauge: error:") and len(err.strip().splitlines()) == 1
    if message:
        assert message in err


def test_missing_manifest_is_one_line(tmp_path, capsys):
    code = main(["backbones", str(tmp_path / "nope.jsonl"), "--model", "demo", "--model", "demo2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_each_backbone_has_its_own_columns_summary_and_provenance(compared, hf_model_dir):
    _, _, _, results, out = compared
    summary = json.loads((out / "results.jsonl.summary.json").read_text())
    assert {"score_b0", "cosine_b0", "truncated_b0", "score_b1", "cosine_b1", "truncated_b1"} <= set(results[0])
    assert "cosine" not in results[0]
    assert summary["clip_b0"]["model"] == "demo" and summary["clip_b1"]["model"] == f"hf:{hf_model_dir}"
    assert summary["clip_b1"]["scales"]["cosine"]["mean"] == pytest.approx(
        np.mean([r["cosine_b1"] for r in results]), abs=1e-9)
    assert {"clip_b0", "clip_b1"} <= set(summary["provenance"]["metrics"])  # one entry per backbone

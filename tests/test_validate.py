"""clipgauge validate on synthetic judgement files in each format: τ-b, τ-c and Spearman equal scipy's on the
same numbers (within 1e-9), and pairwise accuracy equals a direct count under Pick-a-Pic's tie convention."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import random_rgb
from scipy.stats import kendalltau, spearmanr

from clipgauge.cli import main
from clipgauge.sources.judgements import read_judgements
from clipgauge.validation import validate

KEYS = ("n", "kendall_tau_b", "kendall_tau_c", "spearman", "pairwise_accuracy")
CAPTIONS = ["a red circle", "two blue squares", "a green star", "a photo of a dog", "a yellow  circle\non grey"]


def _cli_json(args: list[str], capsys) -> dict:
    assert main(["validate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _assert_schema(doc: dict) -> None:
    for key in KEYS:
        assert key in doc
        if key != "n":
            assert f"{key}_ci" in doc


def test_flickr8k_expert_runs_the_metric_like_the_clipscore_code(tmp_path, capsys):
    """Every judgement is a row (3 per caption for Expert), NaN ratings skipped, captions whitespace-normalised;
    τ-c/τ-b/Spearman of the metric's per-row scores (read back from --scores-out) equal scipy's."""
    rng = np.random.default_rng(1)
    doc, human = {}, []
    for i in range(4):
        random_rgb(10 + i, size=(80, 60)).save(tmp_path / f"im{i}.jpg")
        judgements = []
        for c in range(2):
            for _ in range(3):
                rating = float(rng.integers(1, 5)) if (i, c) != (1, 1) else math.nan
                judgements.append({"caption": CAPTIONS[(i + c) % 5], "rating": rating})
        doc[f"{i}.jpg"] = {"image_path": f"im{i}.jpg", "ground_truth": ["a  shape", "something"],
                           "human_judgement": judgements}
    (tmp_path / "flickr8k.json").write_text(json.dumps(doc).replace("NaN", "NaN"))
    for item in doc.values():  # the paper's loop (compute_metrics.py)
        human += [j["rating"] for j in item["human_judgement"] if not np.isnan(j["rating"])]
    out = _cli_json([str(tmp_path / "flickr8k.json"), "--model", "demo", "--device", "cpu", "--resamples", "50",
                     "--scores-out", str(tmp_path / "scores.jsonl")], capsys)
    _assert_schema(out)
    scored = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == len(human) == 21 and out["n"] == 21
    assert [r["prompt"] for r in scored][:3] == [CAPTIONS[0]] * 3
    assert " ".join(CAPTIONS[4].split()) in [r["prompt"] for r in scored]
    summary = json.loads((tmp_path / "scores.jsonl.summary.json").read_text())
    assert summary["provenance"]["text"]["prompt_prefix"] == "A photo depicts "  # the paper's CLIPCapDataset prefix
    metric = np.array([r["score"] for r in scored])
    assert np.all(metric == 2.5 * np.maximum([r["cosine"] for r in scored], 0))  # CLIP-S, the paper's scale
    assert out["kendall_tau_c"] == pytest.approx(kendalltau(metric, human, variant="c")[0], abs=1e-9)
    assert out["kendall_tau_b"] == pytest.approx(kendalltau(metric, human, variant="b")[0], abs=1e-9)
    assert out["spearman"] == pytest.approx(spearmanr(metric, human)[0], abs=1e-9)
    assert out["pairwise_accuracy"] is None and out["pairwise_accuracy_ci"] is None
    assert out["benchmark"] == "Flickr8K-Expert"
    assert {(p["metric"], p["value"]) for p in out["published"]} == {("CLIP-S", 0.512), ("RefCLIP-S", 0.530)}
    low, high = out["kendall_tau_c_ci"]
    assert low <= high


def test_generic_table_with_a_precomputed_column(tmp_path, capsys):
    rng = np.random.default_rng(2)
    metric, human = rng.normal(size=40).round(2), rng.integers(1, 6, 40).astype(float)  # ties in both
    metric[5] = np.nan  # not scored: left out and counted
    rows = [{"image": f"x{i}.png", "prompt": "p", "human": float(h), "mine": None if np.isnan(m) else float(m)}
            for i, (m, h) in enumerate(zip(metric, human))]
    (tmp_path / "j.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _cli_json([str(tmp_path / "j.jsonl"), "--column", "mine", "--resamples", "200"], capsys)
    _assert_schema(out)
    keep = ~np.isnan(metric)
    assert out["n"] == 39 and out["left_out"] == 1
    for key, variant in (("kendall_tau_b", "b"), ("kendall_tau_c", "c")):
        assert out[key] == pytest.approx(kendalltau(metric[keep], human[keep], variant=variant)[0], abs=1e-9)
    assert out["spearman"] == pytest.approx(spearmanr(metric[keep], human[keep])[0], abs=1e-9)
    again = _cli_json([str(tmp_path / "j.jsonl"), "--column", "mine", "--resamples", "200"], capsys)
    assert again["spearman_ci"] == out["spearman_ci"]  # seeded
    with open(tmp_path / "j.csv", "w", encoding="utf-8") as fh:  # the same table as CSV: the same numbers
        fh.write("image,prompt,human,mine\n")
        fh.writelines(f"{r['image']},{r['prompt']},{r['human']},{'' if r['mine'] is None else r['mine']}\n"
                      for r in rows)
    as_csv = _cli_json([str(tmp_path / "j.csv"), "--column", "mine", "--resamples", "200"], capsys)
    assert {k: as_csv[k] for k in KEYS} == {k: out[k] for k in KEYS}


def _direct_pick_a_pic_accuracy(s0, s1, label_0):
    """eval_preference_predictor.py, threshold 0: 1 if label == prediction, 0.5 if either is a tie, else 0."""
    total = 0.0
    for a, b, lab in zip(s0, s1, label_0):
        label = "tie" if lab == 0.5 else ("0" if lab == 1 else "1")
        pred = "tie" if a == b else ("0" if a > b else "1")
        total += 1.0 if label == pred else 0.5 if "tie" in (label, pred) else 0.0
    return total / len(s0)


def test_pick_a_pic_pairs_accuracy_equals_a_direct_count(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 60
    s0, s1 = rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n).astype(float)  # some equal: metric ties
    label_0 = rng.choice([0.0, 0.5, 1.0], n)
    rows = [{"caption": f"prompt {i}", "jpg_0": f"a{i}.png", "jpg_1": f"b{i}.png", "label_0": float(label_0[i]),
             "label_1": float(1 - label_0[i]), "mine_0": float(s0[i]), "mine_1": float(s1[i])} for i in range(n)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _cli_json([str(tmp_path / "pairs.jsonl"), "--column", "mine", "--resamples", "100"], capsys)
    _assert_schema(out)
    assert out["n"] == n and out["ties"] == int((label_0 == 0.5).sum())
    assert out["pairwise_accuracy"] == pytest.approx(_direct_pick_a_pic_accuracy(s0, s1, label_0), abs=1e-12)
    d = s0 - s1  # the correlations of a pairwise file: score difference against the human share of image 0
    assert out["kendall_tau_b"] == pytest.approx(kendalltau(d, label_0)[0], abs=1e-9)
    assert out["kendall_tau_c"] == pytest.approx(kendalltau(d, label_0, variant="c")[0], abs=1e-9)
    assert out["spearman"] == pytest.approx(spearmanr(d, label_0)[0], abs=1e-9)
    assert out["benchmark"] == "Pick-a-Pic"
    assert {p["metric"] for p in out["published"]} == {"zero-shot CLIP-H", "PickScore"}


def test_hpdv2_ranks_expand_into_every_pair_and_run_the_metric(tmp_path):
    items = []
    for k in range(2):
        paths = []
        for j in range(3):
            random_rgb(20 + 3 * k + j, size=(64, 64)).save(tmp_path / f"h{k}{j}.png")
            paths.append(f"h{k}{j}.png")
        items.append({"prompt": CAPTIONS[k], "image_path": paths, "rank": [2, 1, 2] if k == 0 else [1, 2, 3]})
    (tmp_path / "test.json").write_text(json.dumps(items))
    data = read_judgements(tmp_path / "test.json")
    assert data.benchmark == "HPDv2" and len(data.rows) == 6
    assert data.pairs == [(0, 1, 0.0), (0, 2, 0.5), (1, 2, 1.0), (3, 4, 1.0), (3, 5, 1.0), (4, 5, 1.0)]
    from clipgauge import ScoreOptions

    result = validate(tmp_path / "test.json", options=ScoreOptions(model="demo", device="cpu"),
                      scores_out=tmp_path / "s.jsonl", n_resamples=20)
    scores = [json.loads(line)["score"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    a, b, h = zip(*data.pairs)
    expected = _direct_pick_a_pic_accuracy([scores[i] for i in a], [scores[i] for i in b], h)
    assert result.agreement["pairwise_accuracy"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name, content, message", [
    ("none.jsonl", None, "no judgement file"),
    ("t.jsonl", '{"a": 1, "b": 2}\n', "not a judgement table"),
    ("h.json", '[{"prompt": "p", "image_path": ["a.png", "b.png"], "rank": [1]}]', "2 images and 1 ranks"),
    ("f.json", '{"x": {"image_path": "a.jpg", "human_judgement": []}}', "no rated captions"),
    ("g.jsonl", '{"image": "a.png", "prompt": "p", "human": 1}\n', "no 'mine' column"),
    ("x.txt", "hello", "judgement files are"),
])
def test_bad_input_is_one_line(tmp_path, capsys, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    code = main(["validate", str(tmp_path / name), "--column", "mine"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_report_shows_the_numbers_beside_the_published_ones(tmp_path, capsys):
    rows = [{"caption": "p", "image_0": "a.png", "image_1": "b.png", "label_0": lab, "mine_0": s, "mine_1": 0.5}
            for lab, s in ((1, 0.9), (0, 0.1), (0.5, 0.7), (1, 0.2))]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["validate", str(tmp_path / "pairs.jsonl"), "--column", "mine", "--resamples", "20",
                 "--report", str(tmp_path / "v.html")]) == 0
    html = (tmp_path / "v.html").read_text()
    assert "Agreement with human judgement" in html and "pairwise accuracy" in html
    assert "0.6250" in html  # (1 + 1 + 0.5 + 0) / 4


def test_pick_a_pic_parquet_with_image_bytes_runs_the_metric(tmp_path):
    """Pick-a-Pic's own Parquet layout: jpg_0/jpg_1 hold the encoded images; every pair is scored."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    def png(seed: int) -> bytes:
        buf = io.BytesIO()
        random_rgb(seed, size=(48, 48)).save(buf, "PNG")
        return buf.getvalue()

    table = pa.table({"caption": CAPTIONS[:3], "jpg_0": [png(i) for i in range(3)],
                      "jpg_1": [png(10 + i) for i in range(2)] + [b"not an image"],
                      "label_0": [1.0, 0.5, 0.0], "label_1": [0.0, 0.5, 1.0]})
    pq.write_table(table, tmp_path / "test_unique.parquet")
    from clipgauge import ScoreOptions

    result = validate(tmp_path / "test_unique.parquet", options=ScoreOptions(model="demo", device="cpu"),
                      scores_out=tmp_path / "s.jsonl", n_resamples=20)
    assert result.benchmark == "Pick-a-Pic" and result.errors == 1  # the broken image comes back with its error
    assert result.agreement["n"] == 2 and result.agreement["left_out"] == 1
    scores = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(scores) == 6 and scores[5]["error"] and scores[5]["score"] is None
    s = [r["score"] for r in scores]
    expected = _direct_pick_a_pic_accuracy([s[0], s[2]], [s[1], s[3]], [1.0, 0.5])
    assert result.agreement["pairwise_accuracy"] == pytest.approx(expected, abs=1e-12)

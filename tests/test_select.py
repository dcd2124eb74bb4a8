"""Best-of-N: :func:`clipgauge.stats.select.select_best` and ``clipgauge select``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import score_rows_with_demo
from PIL import Image

from clipgauge.cli import main
from clipgauge.demo import scenes
from clipgauge.sinks import read_results, write_results
from clipgauge.stats.select import select_best

COLUMNS = ["prompt_id", "seed", "image", "prompt", "score", "cosine", "truncated", "error"]


def rec(pid, seed, cos, image=None):
    err = "corrupt or truncated image: x" if cos is None else None
    return {"prompt_id": pid, "seed": seed, "image": image or f"{pid}_{seed}.png", "prompt": f"prompt {pid}",
            "score": cos, "cosine": cos, "truncated": False, "error": err}


RECORDS = [
    rec("a", 0, 0.20), rec("a", 1, 0.35), rec("a", 2, 0.30), rec("a", 3, None),
    rec("b", 0, 0.25), rec("b", 1, 0.25),            # a tie: the first one wins, margin 0
    rec("c", 0, None), rec("c", 1, None),            # nothing scored
    rec("d", 0, 0.10),                               # a single image: no margin
    {"seed": 0, "image": "x.png", "prompt": "p", "score": 0.9, "cosine": 0.9, "truncated": False, "error": None},
]


def test_best_of_n_by_hand() -> None:
    sel = select_best(RECORDS)
    by_key = {g.key: g for g in sel.groups}
    assert list(by_key) == [("a",), ("b",), ("c",), ("d",)]
    a = by_key[("a",)]
    assert a.chosen == [1] and a.chosen_scores == [pytest.approx(0.35)] and a.margins == [pytest.approx(0.05)]
    assert (a.n, a.scored) == (4, 3) and a.mean == pytest.approx(np.mean([0.2, 0.35, 0.3])) and a.max == 0.35
    assert by_key[("b",)].chosen == [4] and by_key[("b",)].margins == [0.0]
    assert by_key[("c",)].chosen == [] and by_key[("c",)].scored == 0
    assert by_key[("d",)].margins == [None]
    assert (sel.rows, sel.errors, sel.no_key, sel.empty_groups) == (10, 3, 1, 1)
    means = [np.mean([0.2, 0.35, 0.3]), 0.25, 0.10]
    maxes = [0.35, 0.25, 0.10]
    assert sel.expected == pytest.approx(np.mean(means)) and sel.best == pytest.approx(np.mean(maxes))
    assert sel.gain == pytest.approx(np.mean(np.subtract(maxes, means)))
    assert sel.gain_ci_low <= sel.gain <= sel.gain_ci_high


def test_top_k_ranks_and_margins() -> None:
    sel = select_best(RECORDS, top=2)
    chosen = sel.chosen_records(RECORDS)
    a = [r for r in chosen if r["prompt_id"] == "a"]
    assert [(r["seed"], r["rank"]) for r in a] == [(1, 1), (2, 2)]
    assert a[0]["margin"] == pytest.approx(0.05) and a[1]["margin"] == pytest.approx(0.10)
    assert all(r["group_n"] == 4 for r in a)
    # the scale changes the numbers, not the choice
    tm = select_best(RECORDS, top=2, scale="torchmetrics")
    assert [g.chosen for g in tm.groups] == [g.chosen for g in sel.groups]
    assert tm.gain == pytest.approx(100 * sel.gain)


def test_cli_out_and_copy_to(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    (run / "imgs").mkdir(parents=True)
    (run / "other").mkdir()
    records = []
    for pid in ("a", "b"):
        for seed in range(3):
            name = f"imgs/{pid}_{seed}.png"
            Image.new("RGB", (8, 8), (40 * seed, 0, 0)).save(run / name)
            records.append(rec(pid, seed, 0.2 + 0.01 * seed * (1 if pid == "a" else -1), name))
    # a clash: another image with the same file name as a's best, best of group "c"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(run / "other" / "a_2.png")
    records.append(rec("c", 0, 0.5, str(run / "other" / "a_2.png")))  # an absolute path
    write_results(run / "results.jsonl", records, COLUMNS)
    out = tmp_path / "chosen" / "best.jsonl"
    dest = tmp_path / "best_images"
    args = ["select", str(run / "results.jsonl"), "--group-by", "prompt_id", "--out", str(out), "--copy-to", str(dest)]
    assert main(args) == 0
    assert "copied 3 images" in capsys.readouterr().out
    chosen = read_results(out)
    assert [(r["prompt_id"], r["seed"], r["rank"]) for r in chosen] == [("a", 2, 1), ("b", 0, 1), ("c", 0, 1)]
    assert list(chosen[0])[: len(COLUMNS)] == COLUMNS and {"rank", "margin", "group_n"} <= set(chosen[0])
    sources = [run / "imgs" / "a_2.png", run / "imgs" / "b_0.png", run / "other" / "a_2.png"]
    for row, src in zip(chosen, sources):
        copy = (out.parent / row["image"]).resolve()
        assert copy.parent == dest.resolve() and copy.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["a_2.png", "a_2_1.png", "b_0.png"]
    # running again reuses the copies instead of piling up new names
    assert main(args) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["a_2.png", "a_2_1.png", "b_0.png"]
    capsys.readouterr()
    assert main(["select", str(run / "results.jsonl"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_groups"] == 3 and doc["groups"][0]["chosen"][0]["row"] == 2
    assert doc["best"] == pytest.approx(np.mean([0.22, 0.2, 0.5]))


def test_cli_usage_errors(tmp_path, capsys) -> None:
    path = tmp_path / "r.jsonl"
    write_results(path, RECORDS, COLUMNS)
    assert main(["select", str(path), "--group-by", "model"]) == 2
    assert main(["select", str(path), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["select", str(path), "--copy-to", str(tmp_path / "d")]) == 2  # images do not exist
    err = capsys.readouterr().err
    assert "'model'" in err and "not found" in err and "Traceback" not in err



PROMPTS = ["a red circle", "two yellow stars", "a blue square on a white background", "a green triangle",
           "a purple star", "an orange circle", "a white square on a black background", "two red triangles",
           "a yellow circle", "a blue star", "a black square", "a green circle on a gray background"]


def test_best_of_n_picks_the_image_that_follows_the_prompt(tmp_path, capsys) -> None:
    """One matching and three mismatching renders per prompt, scored by the demo CLIP: select keeps the match."""
    rng = np.random.default_rng(0)
    rows = []
    for p, prompt in enumerate(PROMPTS):
        follows = [True, False, False, False]
        rng.shuffle(follows)
        for seed, follow in enumerate(follows):
            image, scene = scenes.render_prompt(prompt, follow=follow, rng=rng, size=64)
            name = f"p{p}_s{seed}.png"
            image.save(tmp_path / name)
            rows.append({"prompt_id": f"p{p}", "seed": seed, "image": name, "prompt": prompt, "follows": follow})
    results = score_rows_with_demo(tmp_path, rows)
    capsys.readouterr()
    chosen = tmp_path / "chosen.jsonl"
    assert main(["select", str(results), "--group-by", "prompt_id", "--out", str(chosen), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    picks = read_results(chosen)
    assert len(picks) == len(PROMPTS)
    assert sum(r["follows"] for r in picks) >= 10  # of 12; picking at random would get 3
    assert doc["gain"] > 0 and doc["best"] > doc["expected"]

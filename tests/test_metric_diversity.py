"""``--metric diversity``: mean pairwise cosine distance among the images of one prompt, against a recipe written
out here on embeddings computed by transformers alone."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes, random_rgb
from PIL import Image

from clipgauge.cli import main
from clipgauge.sinks import read_results
from clipgauge.sinks.summary import read_summary
from clipgauge.stats.diversity import per_group_values

# prompt -> images; "lonely" has one image, group "a" also holds a missing file (an error row)
GROUPS = {"a red cube": 4, "two cats": 3, "lonely": 1}


@pytest.fixture()
def seeds(tmp_path) -> tuple[Path, list[dict]]:
    rows, k = [], 0
    for prompt, n in GROUPS.items():
        for s in range(n):
            name = f"img_{k}.jpg"
            (tmp_path / name).write_bytes(jpeg_bytes(random_rgb(100 + k, size=(80 + 8 * k, 64))))
            rows.append({"id": f"r{k}", "image": name, "prompt": prompt, "prompt_id": f"p{k % 2}", "seed": s})
            k += 1
    rows.append({"id": "broken", "image": "missing.jpg", "prompt": "a red cube", "prompt_id": "p0", "seed": 9})
    with open(tmp_path / "manifest.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return tmp_path, rows


def reference_embeddings(model_dir: Path, paths: list[Path]) -> np.ndarray:
    """L2-normalised image features by transformers alone (CLIPModel + CLIPImageProcessorPil)."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    proc = CLIPImageProcessorPil.from_pretrained(model_dir)
    with torch.no_grad():
        px = proc(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
        f = model.get_image_features(pixel_values=px).pooler_output
    return torch.nn.functional.normalize(f, dim=-1).numpy().astype(np.float64)


def recipe(rows: list[dict], folder: Path, model_dir: Path, key: str) -> dict[str, float]:
    """Per row id: mean over pairs i < j of (1 - e_i . e_j) among the usable images of the row's group."""
    usable = [r for r in rows if (folder / r["image"]).is_file()]
    emb = dict(zip([r["id"] for r in usable], reference_embeddings(model_dir, [folder / r["image"] for r in usable])))
    out = {}
    for r in usable:
        ids = [q["id"] for q in usable if q[key] == r[key]]
        dists = [1.0 - float(np.dot(emb[i], emb[j])) for i, j in combinations(ids, 2)]
        out[r["id"]] = sum(dists) / len(dists) if dists else float("nan")
    return out


def score(folder: Path, model_dir: Path, out: Path, metric: str = "diversity") -> list[dict]:
    assert main(["score", str(folder / "manifest.jsonl"), "--model", f"hf:{model_dir}", "--device", "cpu",
                 "--metric", "clip", "--metric", metric, "--out", str(out)]) == 1  # the broken row
    return read_results(out)


def check(results: list[dict], want: dict[str, float]) -> None:
    by_id = {r["id"]: r for r in results}
    assert by_id["broken"]["error"] and by_id["broken"]["diversity"] is None
    for rid, value in want.items():
        got = by_id[rid]["diversity"]
        if np.isnan(value):
            assert got is None, (rid, got)
        else:
            assert got == pytest.approx(value, abs=2e-6), rid
            assert 0.0 <= got <= 2.0


def test_diversity_per_prompt_matches_the_recipe_file_and_folder(seeds, hf_model_dir, tmp_path):
    folder, rows = seeds
    want = recipe(rows, folder, hf_model_dir, "prompt")
    assert np.isnan(want["r7"]) and not np.isnan(want["r0"])  # "lonely": one image
    for out in (tmp_path / "div.jsonl", tmp_path / "div_parts"):
        results = score(folder, hf_model_dir, out)
        check(results, want)
        by_id = {r["id"]: r for r in results}
        assert by_id["r0"]["diversity_images"] == 4 and by_id["r4"]["diversity_images"] == 3  # broken left out
        summary = read_summary(out)
        groups = [want["r0"], want["r4"]]  # one value per group with two images or more
        assert summary["diversity"]["groups"] == 2
        assert summary["diversity"]["mean"] == pytest.approx(np.mean(groups), abs=2e-6)
        assert summary["diversity"]["n"] == 2
        primary = [c for c in summary["columns"] if c.get("primary") and c["metric"] == "diversity"]
        assert [c["name"] for c in primary] == ["diversity"] and primary[0]["higher_is_better"] is True


def test_diversity_group_column(seeds, hf_model_dir, tmp_path):
    folder, rows = seeds
    want = recipe(rows, folder, hf_model_dir, "prompt_id")
    check(score(folder, hf_model_dir, tmp_path / "g.jsonl", "diversity:group=prompt_id"), want)


def test_diversity_group_column_missing_is_one_line(seeds, hf_model_dir, tmp_path, capsys):
    folder, _ = seeds
    code = main(["score", str(folder / "manifest.jsonl"), "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                 "--metric", "diversity:group=nope", "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "nope" in err and "Traceback" not in err


def test_per_group_values_recovers_each_group_once():
    values = np.array([0.5, 0.5, 0.5, 0.5, 0.5, np.nan, 0.2, 0.2])
    counts = np.array([2, 2, 3, 3, 3, 1, 2, 2], dtype=float)
    assert sorted(per_group_values(values, counts).tolist()) == [0.2, 0.5, 0.5]

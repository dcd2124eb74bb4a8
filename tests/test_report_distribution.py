"""``clipgauge report``'s section for distances and diversity: per-prompt diversity of runs scored with
``--metric diversity``, and with ``--distance-to REF`` CMMD / FD / Vendi against a reference, checked against
recipes written out here (google-research's ``mmd``, clean-fid's ``frechet_distance``, Vendi's definition)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
import scipy.linalg

from clipgauge.cli import main
from test_compare_diversity import PROMPTS, group_means, make_run


def stored_embeddings(results) -> np.ndarray:
    """The run's stored image embeddings (float16 in the results) as float64, in row order."""
    from clipgauge.sinks import ResultsReader

    rows = []
    for _, table in ResultsReader(results).tables(["image_embedding"]):
        rows.extend(table.column("image_embedding").to_pylist())
    return np.array([r for r in rows if r is not None], dtype=np.float64)


def mmd_recipe(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """google-research/cmmd distance.py ``mmd`` (diagonal kept), in numpy."""
    gamma = 1 / (2 * sigma**2)
    xx, yy = np.sum(x * x, 1), np.sum(y * y, 1)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + xx[:, None] + xx[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + xx[:, None] + yy[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + yy[:, None] + yy[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def fd_recipe(x: np.ndarray, y: np.ndarray) -> float:
    """clean-fid's ``frechet_distance`` of Gaussians fitted with ``np.cov(rowvar=False)``."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def vendi_recipe(x: np.ndarray) -> float:
    """exp of the Shannon entropy of the eigenvalues of K/n, K the cosine kernel."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = np.linalg.eigvalsh(u @ u.T / len(u))
    w = w[w > 0]
    return float(np.exp(-np.sum(w * np.log(w))))


def section(page: str) -> str:
    match = re.search(r'<section id="distribution">(.*?)</section>', page, re.S)
    assert match, "no distribution section"
    return html.unescape(match.group(1))


def test_report_shows_diversity_section(tmp_path, capsys):
    a = make_run(tmp_path / "a", 0, save_embeddings=False)
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["report", str(a), "--out", str(out), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "distribution" in doc["sections"]
    text = section(out.read_text(encoding="utf-8"))
    assert f"{np.mean(group_means(a)):.4f}" in text and f"<td>{len(PROMPTS)}</td>" in text
    assert "CMMD" not in text.split("</thead>")[0]  # no --distance-to: no distance columns
    from clipgauge.sinks import read_results

    vector = read_results(a)[0]["diversity_embedding"]
    assert vector[:20] not in out.read_text(encoding="utf-8")  # the kept embeddings are not shown on the cards


def test_report_without_diversity_or_distance_has_no_section(tmp_path, capsys):
    folder = tmp_path / "plain"
    a = make_run(folder, 0, save_embeddings=False)
    from clipgauge.sinks import read_results

    rows = read_results(a)
    for r in rows:
        r.pop("diversity"), r.pop("diversity_images"), r.pop("diversity_embedding")
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["report", str(plain), "--out", str(out), "--image-root", str(folder), "--json", "-"]) == 0
    assert "distribution" not in json.loads(capsys.readouterr().out)["sections"]


def test_report_distance_to_another_run(tmp_path, capsys):
    pytest.importorskip("clipgauge.distribution.run")
    a, b = make_run(tmp_path / "a", 0), make_run(tmp_path / "b", 500)
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["report", str(a), "--distance-to", str(b), "--out", str(out), "--json", "-"]) == 0
    assert "distribution" in json.loads(capsys.readouterr().out)["sections"]
    text = section(out.read_text(encoding="utf-8"))
    x, y = stored_embeddings(a), stored_embeddings(b)
    cmmd = float(re.search(r'class="cmmd"[^>]*>([-0-9.]+)<', text).group(1))
    fd = float(re.search(r'class="fd"[^>]*>([-0-9.]+)<', text).group(1))
    vendi = float(re.search(r'class="vendi">([-0-9.]+)<', text).group(1))
    assert cmmd == pytest.approx(mmd_recipe(x, y), abs=1e-4 + 1e-3 * abs(mmd_recipe(x, y)))
    assert fd == pytest.approx(fd_recipe(x, y), abs=1e-4 + 1e-3 * abs(fd_recipe(x, y)))
    assert vendi == pytest.approx(vendi_recipe(x), abs=2e-3)
    assert f"{np.mean(group_means(a)):.4f}" in text  # the diversity beside it


def test_report_distance_needs_saved_embeddings(tmp_path, capsys):
    a, b = make_run(tmp_path / "a", 0, save_embeddings=False), make_run(tmp_path / "b", 500)
    capsys.readouterr()
    code = main(["report", str(a), "--distance-to", str(b), "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--save-embeddings" in err

"""`clipgauge report`: a self-contained, escaped HTML page built from real results files, checked as text and
in a real headless Chromium."""

from __future__ import annotations

import html as html_lib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes, random_rgb
from PIL import Image

from browser import chromium_executable, load_page
from clipgauge.cli import main
from clipgauge.demo.scenes import render_prompt
from clipgauge.report.inputs import as_bool
from clipgauge.report.thumbnails import thumbnail
from clipgauge.sinks import read_results

XSS = "<script>alert(1)</script>"
HOSTILE = 'a "quoted" & <img src=x onerror="window.__pwned=1"> prompt'
LONG = "an astronaut riding a horse on the moon, highly detailed, " * 8  # > 77 tokens
CATEGORIES = ["simple", "counting", "$x$ <b>odd</b>", "simple", "counting", "long"]
PROMPTS = ["a red circle", "two yellow stars", XSS, HOSTILE, "a blue square", LONG]
MAX_IMAGES = 5


def _run(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def results(tmp_path_factory, hf_model_dir) -> dict:
    """Two real runs scored by `clipgauge score` (JSONL, and CSV with a prompt prefix) over 14 rows:
    6 prompts × 2 seeds, a missing and an empty file; then one scored image is deleted (a placeholder in the grid)."""
    root = tmp_path_factory.mktemp("report")
    images = root / "images"
    images.mkdir()
    rows = []
    for i, (prompt, cat) in enumerate(zip(PROMPTS, CATEGORIES)):
        for seed in (0, 1):
            name = f"p{i}_s{seed}.png"
            if i < 2 or i == 4:
                render_prompt(prompt, follow=seed == 0, rng=10 * i + seed, size=96)[0].save(images / name)
            else:
                name = name.replace(".png", ".jpg")
                (images / name).write_bytes(jpeg_bytes(random_rgb(10 * i + seed, size=(96, 72))))
            rows.append({"prompt_id": f"p{i}", "prompt": prompt, "image": name, "seed": seed,
                         "cfg": 3.0 if seed == 0 else 7.5, "category": cat})
    # two rows that cannot be scored, whose hostile prompts are always on the page (in the error table)
    rows.append({"prompt_id": "p9", "prompt": XSS, "image": "nope.png", "seed": 0, "cfg": 3.0, "category": "simple"})
    (images / "empty.png").write_bytes(b"")
    rows.append({"prompt_id": "p10", "prompt": HOSTILE, "image": "empty.png", "seed": 0, "cfg": 3.0,
                 "category": "simple"})
    manifest = images / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = root / "out"
    a, b = out / "run_a.jsonl", out / "run_b.csv"
    assert _run("score", manifest, "--model", f"hf:{hf_model_dir}", "--out", a, "--device", "cpu") == 1
    assert _run("score", manifest, "--model", f"hf:{hf_model_dir}", "--out", b, "--device", "cpu",
                "--prompt-prefix", "a photo of ") == 1
    deleted = "p1_s1.png"
    (images / deleted).unlink()  # scored, then lost: the grid must show a placeholder, not crash
    return {"root": root, "a": a, "b": b, "deleted": deleted, "rows": rows}


@pytest.fixture(scope="module")
def report(results) -> dict:
    html = results["root"] / "report.html"
    code = _run("report", results["a"], results["b"], "--out", html, "--sweep-param", "cfg",
                "--max-images", MAX_IMAGES, "--thumb-size", 96, "--title", "Nightly <eval> & co")
    assert code == 0
    return {"path": html, "text": html.read_text(encoding="utf-8")}


def _expected_grid(path: Path, deleted: str) -> tuple[list[float], int, int]:
    """From a results file alone: the worst MAX_IMAGES scores, how many of those lack their file, and errors."""
    recs = read_results(path)
    scored = [(float(r["cosine"]), i) for i, r in enumerate(recs) if r["error"] in (None, "")]
    worst = sorted(scored)[:MAX_IMAGES]
    missing = sum(recs[i]["image"] == deleted for _, i in worst)
    return [s for s, _ in worst], missing, len(recs) - len(scored)


def test_page_is_self_contained(report):
    html = report["text"]
    for attr, value in re.findall(r'\b(src|href|action|poster|srcset)\s*=\s*"([^"]*)"', html):
        assert value.startswith("data:") if attr == "src" else value.startswith("#"), (attr, value[:80])
    assert not re.search(r"https?://", html)  # no CDN, no fonts, no links out
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<iframe" not in html and "<object" not in html
    assert html.count("<script") == 1  # the page's own sorting script, nothing else
    csp = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1]  # only the page's own script (by its hash) runs


def test_user_text_is_escaped(report):
    html = report["text"]
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert "<b>odd</b>" not in html and "&lt;b&gt;odd&lt;/b&gt;" in html  # a category name
    assert "<title>Nightly &lt;eval&gt; &amp; co</title>" in html


def test_grid_is_worst_first_with_counts(report, results):
    html = report["text"]
    parts = html.split('<div class="grid" id="grid-')[1:]
    grids = [(part[0], re.split(r"\n<h3|</section>", part)[0]) for part in parts]
    assert [g for g, _ in grids] == ["0", "1"]
    total_thumbs = 0
    for (_, body), path in zip(grids, (results["a"], results["b"])):
        worst, missing, _ = _expected_grid(path, results["deleted"])
        shown = [float(s) for s in re.findall(r'<figure class="card" data-score="([^"]+)"', body)]
        np.testing.assert_allclose(shown, worst, atol=1e-9)  # the lowest scores, lowest first
        recs = read_results(path)
        for card in body.split('<figure class="card"')[1:]:  # each card: its row's prompt and truncation flag
            rec = recs[int(re.search(r'data-row="(\d+)"', card).group(1)) - 1]
            assert f'<div class="prompt">{html_lib.escape(rec["prompt"], quote=False)}</div>' in card
            assert ('class="badge"' in card) == as_bool(rec["truncated"])
        thumbs = body.count('<img class="thumb" src="data:image/jpeg;base64,')
        assert thumbs == MAX_IMAGES - missing
        assert body.count('<div class="missing">image not found: ') == missing
        total_thumbs += thumbs
    assert html.count('class="thumb"') == total_thumbs
    assert html.count(f"Showing {MAX_IMAGES} of 12 scored images; 7 left out") == 2


def test_tables_list_every_run_error_and_category(report, results):
    html = report["text"]

    def body_rows(table_id: str) -> int:
        m = re.search(rf'<table class="sortable" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
        return m.group(1).count("<tr")

    assert body_rows("summary-table") == 2
    assert body_rows("comparison-table") == 1
    assert body_rows("category-table") == len(set(CATEGORIES))
    assert body_rows("sweep-table") == 2  # cfg 3 and 7.5
    assert body_rows("error-table") == 4  # the missing and the empty file, in each run
    assert html.count("file not found:") == 2 and html.count("<td class=\"text\">empty file</td>") == 2
    assert "Rows matched on prompt_id" in html


def test_json_output_and_numbers(capsys, results, tmp_path):
    out = tmp_path / "r.html"
    code = main(["report", str(results["a"]), str(results["b"]), "--out", str(out), "--max-images",
                 str(MAX_IMAGES), "--scale", "torchmetrics", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["out"] == str(out) and data["bytes"] == out.stat().st_size and data["scale"] == "torchmetrics"
    # no per-language section: the prompts are English, or have no language (the XSS string); that section is
    # tested in test_language.py
    assert data["sections"] == ["summary", "comparison", "histograms", "categories", "errors", "images"]
    for run, path in zip(data["runs"], (results["a"], results["b"])):
        summary = json.loads(Path(str(path) + ".summary.json").read_text())
        _, missing, errors = _expected_grid(path, results["deleted"])
        assert run["rows"] == 14 and run["errors"] == errors == 2 and run["scored"] == 12
        assert run["truncated"] == 2
        assert run["mean"] == pytest.approx(summary["scales"]["torchmetrics"]["mean"], abs=1e-9)
        assert run["images_shown"] == MAX_IMAGES and run["images_left_out"] == 12 - MAX_IMAGES
        assert run["images_missing"] == missing
    assert data["comparison"]["key"] == ["prompt_id", "seed"]
    # 12 image pairs; with seeds in the key, differences are averaged per prompt: 6 independent units
    assert [(p["a"], p["b"], p["pairs"], p["n"]) for p in data["comparison"]["pairs"]] == [("run_a", "run_b", 12, 6)]
    html = out.read_text(encoding="utf-8")
    assert 'id="sweep"' not in html and "scores in the <b>torchmetrics</b> scale" in html


def test_human_output_and_single_run(capsys, results, tmp_path):
    out = tmp_path / "one.html"
    assert main(["report", str(results["a"]), "--out", str(out), "--max-images", "0"]) == 0
    text = capsys.readouterr().out
    assert "run_a" in text and "images shown" in text and "sections: summary, histograms, categories" in text
    html = out.read_text(encoding="utf-8")
    assert 'id="comparison"' not in html and 'class="thumb"' not in html
    assert "Showing 0 of 12 scored images; 12 left out" in html
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # the permissions any file the user writes gets (umask), not owner-only as mkstemp
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "results file not found"),
    (["{manifest}"], "has no score column: no 'cosine'"),
    (["{a}", "--sweep-param", "steps"], "no results file has a 'steps' column"),
    (["{a}", "{b}", "--key", "nope"], "'nope'"),
    (["{a}", "{b}", "--key", "category"], "does not identify rows"),
    (["{a}", "--thumb-size", "2"], "--thumb-size"),
    ([], "Missing argument"),
    (["{corrupt}"], "cannot read results file"),
])
def test_usage_errors_are_one_line(capsys, results, tmp_path, args, message):
    paths = {"missing": tmp_path / "nope.jsonl", "manifest": results["root"] / "images" / "manifest.jsonl",
             "a": results["a"], "b": results["b"], "corrupt": tmp_path / "bad.jsonl"}
    paths["corrupt"].write_text('{"cosine": 0.1}\nnot json\n', encoding="utf-8")
    argv = ["report", *[a.format(**paths) for a in args], "--out", str(tmp_path / "x.html")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "x.html").exists()


def test_help(capsys):
    assert main(["report", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--out", "--sweep-param", "--max-images", "--thumb-size", "--title", "--json", "--key"):
        assert option in text


def test_thumbnail_shows_the_scored_picture(tmp_path):
    # EXIF orientation 6 (rotate 90°): an 80×40 file is a 40×80 picture, as scored
    img = random_rgb(3, size=(80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "rot.jpg").write_bytes(jpeg_bytes(img, exif=exif.tobytes()))
    th = thumbnail(tmp_path / "rot.jpg", 32)
    assert (th.width, th.height) == (16, 32) and th.uri.startswith("data:image/jpeg;base64,")
    # transparency is composited on white, as scored
    Image.new("RGBA", (50, 50), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    th = thumbnail(tmp_path / "clear.png", 200)
    assert (th.width, th.height) == (50, 50)  # never enlarged
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert thumbnail(tmp_path / "bad.png", 64).error.startswith("corrupt or truncated image")
    assert thumbnail(tmp_path / "gone.png", 64).error.startswith("file not found")


def test_csv_booleans():
    assert [as_bool(v) for v in (True, "True", "true", "1", 1)] == [True] * 5
    assert [as_bool(v) for v in (False, "False", "", None, 0, math.nan)] == [False] * 6


@pytest.mark.skipif(chromium_executable() is None, reason="chromium is not installed (CI installs it: .ci/run)")
def test_report_in_headless_chromium(report, results):
    expected_thumbs = sum(MAX_IMAGES - _expected_grid(p, results["deleted"])[1] for p in (results["a"], results["b"]))
    page = load_page(report["path"], evaluate={
        "thumbs": "Array.from(document.querySelectorAll('img.thumb')).filter(i => i.naturalWidth > 0).length",
        "broken": "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length",
        "plots": "document.querySelectorAll('img.plot').length",
        "summary_rows": "document.querySelectorAll('#summary-table tbody tr').length",
        "error_rows": "document.querySelectorAll('#error-table tbody tr').length",
        "category_rows": "document.querySelectorAll('#category-table tbody tr').length",
        "xss_text": f"document.body.innerText.includes({json.dumps(XSS)})",
        "hostile_text": f"document.body.innerText.includes({json.dumps(HOSTILE)})",
        "pwned": "window.__pwned === undefined ? null : window.__pwned",
        "scripts": "document.scripts.length",
        # the optional script works: re-order the first grid best first
        "best_first": "(() => { const s = document.querySelector('label.grid-order select'); s.value = 'best';"
                      " s.dispatchEvent(new Event('change')); const c = document.querySelectorAll('#grid-0 figure');"
                      " return [Number(c[0].dataset.score), Number(c[c.length - 1].dataset.score)]; })()",
    })
    assert page.console_errors == [] and page.exceptions == [] and page.dialogs == []
    assert all(u.startswith("data:") or u == report["path"].resolve().as_uri() for u in page.requests), page.requests
    v = page.values
    assert v["thumbs"] == expected_thumbs and v["broken"] == 0
    assert v["plots"] == 2 + 1 + 1  # two histograms, category bars, sweep curves
    assert (v["summary_rows"], v["error_rows"], v["category_rows"]) == (2, 4, len(set(CATEGORIES)))
    assert v["xss_text"] is True and v["hostile_text"] is True and v["pwned"] is None and v["scripts"] == 1
    assert v["best_first"][0] >= v["best_first"][1]

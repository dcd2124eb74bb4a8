"""Benchmark prompt sets: parsing, download + checksum + cache (over a local HTTP server), manifests, CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.sinks import read_results
from clipgauge.sources import promptsets
from clipgauge.sources.promptsets import PROMPT_SETS, generation_manifest, load_prompt_set

PARTI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "PartiPrompts.tsv"
DRAWBENCH_CATEGORIES = ["Colors", "Conflicting", "Counting", "DALL-E", "Descriptions", "Gary Marcus et al.",
                        "Misspellings", "Positional", "Rare Words", "Reddit", "Text"]

needs_parti = pytest.mark.skipif(not PARTI.is_file(), reason="../shared/data/PartiPrompts.tsv not present")


def write_drawbench_like(path: Path, n: int = 200) -> Path:
    """A CSV shaped like the DrawBench sheet export: Prompts, Category; 200 rows in 11 categories."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["Prompts", "Category"])
        for i in range(n):
            w.writerow([f'A "quoted", comma prompt number {i}.', DRAWBENCH_CATEGORIES[i % 11]])
    return path


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CLIPGAUGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "promptsets"


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server over a folder; yields (folder, base_url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def point_at(monkeypatch, name: str, url: str) -> None:
    monkeypatch.setitem(PROMPT_SETS, name, dataclasses.replace(PROMPT_SETS[name], url=url))


def test_cache_dir_honours_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CLIPGAUGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert promptsets.cache_dir() == tmp_path / "xdg" / "clipgauge" / "promptsets"
    monkeypatch.setenv("CLIPGAUGE_CACHE", str(tmp_path / "mine"))
    assert promptsets.cache_dir() == tmp_path / "mine" / "promptsets"


@needs_parti
def test_parti_pin_is_the_sha256_of_the_public_file() -> None:
    data = PARTI.read_bytes()
    assert hashlib.md5(data).hexdigest() == "975b3cf12ca946f1e994c89c02a55e3c"  # as published with the copy
    assert hashlib.sha256(data).hexdigest() == PROMPT_SETS["parti"].sha256


@needs_parti
def test_parse_parti_matches_an_independent_reading() -> None:
    ps = load_prompt_set("parti", file=PARTI)
    lines = PARTI.read_text(encoding="utf-8").splitlines()
    fields = [line.split("\t") for line in lines[1:]]
    assert lines[0].split("\t") == ["Prompt", "Category", "Challenge", "Note"]
    assert len(ps.prompts) == len(fields) == 1632
    assert [p.prompt for p in ps.prompts] == [f[0] for f in fields]
    assert [p.category for p in ps.prompts] == [f[1] for f in fields]
    assert [p.challenge for p in ps.prompts] == [f[2] for f in fields]
    assert len(ps.categories()) == 12 and len(ps.challenges()) == 11
    assert ps.prompts[0].prompt_id == "parti-0000" and ps.prompts[-1].prompt_id == "parti-1631"
    assert any(p.prompt.startswith('"') for p in ps.prompts)  # quotes are kept verbatim (no CSV quoting in TSV)
    assert "matches the pinned checksum" in ps.verification


@needs_parti
def test_generation_manifest_filters_and_repeats() -> None:
    ps = load_prompt_set("parti", file=PARTI)
    rows, columns = generation_manifest(ps, categories=["animals", "People"], challenges=["Basic"], repeat=3)
    assert columns == ["prompt_id", "prompt", "category", "challenge", "seed"]
    expected = [p for p in ps.prompts if p.category in ("Animals", "People") and p.challenge == "Basic"]
    assert len(rows) == 3 * len(expected) and expected
    assert [r["seed"] for r in rows[:4]] == [0, 1, 2, 0]
    assert rows[0]["prompt_id"] == rows[2]["prompt_id"] == expected[0].prompt_id
    plain, cols = generation_manifest(ps)
    assert len(plain) == 1632 and "seed" not in cols and "seed" not in plain[0]
    with pytest.raises(UsageError, match="unknown category 'Robots'.*Animals"):
        generation_manifest(ps, categories=["Robots"])
    with pytest.raises(UsageError, match="repeat"):
        generation_manifest(ps, repeat=0)


@needs_parti
def test_download_verifies_caches_and_reuses(cache, server, monkeypatch) -> None:
    root, base = server
    (root / "PartiPrompts.tsv").write_bytes(PARTI.read_bytes())
    point_at(monkeypatch, "parti", f"{base}/PartiPrompts.tsv")
    ps = load_prompt_set("parti")
    assert ps.path == cache / "PartiPrompts.tsv" and ps.path.read_bytes() == PARTI.read_bytes()
    assert len(ps.prompts) == 1632 and ps.verification == "SHA-256 matches the pinned checksum"
    (root / "PartiPrompts.tsv").unlink()  # offline from now on: the cache answers
    assert len(load_prompt_set("parti").prompts) == 1632
    # a damaged cache is noticed and fetched again; with the source gone that is a clear error
    ps.path.write_bytes(PARTI.read_bytes()[:-10])
    with pytest.raises(UsageError, match="prompt set's file") as info:
        load_prompt_set("parti")
    assert "--file" in info.value.cli  # the command line names its flag


@needs_parti
def test_download_with_a_wrong_checksum_is_refused_and_not_cached(cache, server, monkeypatch) -> None:
    root, base = server
    (root / "PartiPrompts.tsv").write_bytes(PARTI.read_bytes().replace(b"shiba inu", b"shiba ino"))
    point_at(monkeypatch, "parti", f"{base}/PartiPrompts.tsv")
    with pytest.raises(UsageError, match="SHA-256 .* expected fab29e41") as info:
        load_prompt_set("parti")
    assert "--file" not in str(info.value) and "--file" in info.value.cli
    assert not (cache / "PartiPrompts.tsv").exists()
    # an explicit --sha256 accepts that file
    digest = hashlib.sha256((root / "PartiPrompts.tsv").read_bytes()).hexdigest()
    assert load_prompt_set("parti", sha256=digest).verification == "SHA-256 matches --sha256"


def test_drawbench_is_checked_by_shape_then_pinned_on_first_download(cache, server, monkeypatch) -> None:
    root, base = server
    write_drawbench_like(root / "db.csv")
    point_at(monkeypatch, "drawbench", f"{base}/db.csv")
    ps = load_prompt_set("drawbench")
    assert len(ps.prompts) == 200 and len(ps.categories()) == 11 and ps.prompts[0].challenge is None
    assert ps.prompts[0].prompt == 'A "quoted", comma prompt number 0.' and ps.prompts[0].prompt_id == "drawbench-000"
    assert "recorded" in ps.verification
    pin = cache / "DrawBench.csv.sha256"
    assert pin.read_text().strip() == ps.sha256
    again = load_prompt_set("drawbench")
    assert again.verification == "SHA-256 matches the one recorded at first download"
    # a damaged cached copy no longer matches the recorded checksum: it is fetched again
    (cache / "DrawBench.csv").write_text("Prompts,Category\nx,y\n")
    assert load_prompt_set("drawbench").sha256 == ps.sha256
    # the source changes after the first download: the recorded checksum refuses it
    write_drawbench_like(root / "db.csv", n=201)
    (cache / "DrawBench.csv").unlink()
    with pytest.raises(UsageError, match="expected " + ps.sha256):
        load_prompt_set("drawbench")


def test_drawbench_download_of_the_wrong_shape_is_refused(cache, server, monkeypatch) -> None:
    root, base = server
    write_drawbench_like(root / "db.csv", n=150)
    point_at(monkeypatch, "drawbench", f"{base}/db.csv")
    with pytest.raises(UsageError, match="150 prompts in 11 categories, expected 200 in 11"):
        load_prompt_set("drawbench")
    (root / "login.csv").write_text("<html>sign in</html>")
    point_at(monkeypatch, "drawbench", f"{base}/login.csv")
    with pytest.raises(UsageError, match="no prompt column"):
        load_prompt_set("drawbench")
    assert not (cache / "DrawBench.csv").exists()


def test_no_network_gives_a_clear_message_naming_file(cache, monkeypatch, capsys) -> None:
    point_at(monkeypatch, "parti", "http://127.0.0.1:9/PartiPrompts.tsv")  # nothing listens on port 9
    with pytest.raises(UsageError, match="cannot download PartiPrompts .* yourself and give its path") as info:
        load_prompt_set("parti", timeout=5)
    assert "--" not in str(info.value) and "--file PATH" in info.value.cli
    assert main(["prompts", "parti"]) == 2
    err = capsys.readouterr().err
    assert "--file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_local_drawbench_file_and_cli(tmp_path, capsys) -> None:
    src = write_drawbench_like(tmp_path / "DrawBench.csv")
    out = tmp_path / "m.jsonl"
    assert main(["prompts", "drawbench", "--file", str(src), "--category", "Counting,colors", "--repeat", "2",
                 "--out", str(out)]) == 0
    rows = read_results(out)
    assert len(rows) == 2 * (19 + 18)  # rows i with i % 11 == 0 (Colors: 19) or 2 (Counting: 18), twice each
    assert list(rows[0]) == ["prompt_id", "prompt", "category", "seed"]
    assert {r["category"] for r in rows} == {"Colors", "Counting"}
    assert main(["prompts", "drawbench", "--file", str(src), "--challenge", "Basic"]) == 2
    assert "no challenge column" in capsys.readouterr().err


@needs_parti
def test_cli_json_and_formats(tmp_path, capsys) -> None:
    out = tmp_path / "parti.csv"
    assert main(["prompts", "parti", "--file", str(PARTI), "--challenge", "Writing & Symbols", "--out", str(out),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["prompts"] == doc["rows"] == 91 and doc["sha256"] == PROMPT_SETS["parti"].sha256
    assert sum(doc["by_category"].values()) == 91
    rows = read_results(out)
    assert len(rows) == 91 and all(r["challenge"] == "Writing & Symbols" for r in rows)
    assert main(["prompts", "--help"]) == 0
    assert main(["prompts", "coco"]) == 2

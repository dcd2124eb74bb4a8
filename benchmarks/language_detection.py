"""Language identification of prompts: accuracy on the test corpus and cost, per lingua configuration.

For each configuration (lingua's low- or high-accuracy mode, or clipgauge's two-stage default; every
language lingua knows, or clipgauge's default set of 25) a fresh process builds clipgauge's detector and measures:

* accuracy of ``detect_languages`` on ``tests/data/languages.tsv`` (overall and per language),
* start-up: building the detector and the first call (model loading), and peak RSS,
* distinct prompts/s (every text new to the cache),
* rows/s through the cache (many rows, few distinct prompts: what a scoring run pays per row),
  against the ceiling of a plain dict lookup per row, and rows/s through the ``language`` metric itself
  (batches of 32 rows).

``--tokens`` also prints how many CLIP BPE tokens the same 15 scenes take in each language.

Usage::

    python benchmarks/language_detection.py [--configs two:common low:all high:all two:all low:common high:common]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from clipgauge.language.detect import LANGUAGES as DEFAULT_LANGUAGES

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "languages.tsv"
COMMON = DEFAULT_LANGUAGES

CHILD = r"""
import json, resource, sys, time
from collections import Counter
from clipgauge.language import detect
mode, langs, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
detect.MODE = {"low": "low_accuracy", "high": "high_accuracy", "two": "two_stage"}[mode]
detect.LANGUAGES = None if langs == "all" else tuple(json.loads(langs))
rows = [ln.rstrip("\n").split("\t", 1) for ln in open(corpus, encoding="utf-8") if ln.strip() and ln[0] != "#"]
t = time.perf_counter()
got = detect.detect_languages([p for _, p in rows])
first = time.perf_counter() - t
ok, n = Counter(), Counter()
for (lang, _), d in zip(rows, got):
    n[lang] += 1
    ok[lang] += d.code == lang
by_lang = {lang: [ok[lang], n[lang]] for lang in sorted(n)}
wrong = [[lang, p, d.code] for (lang, p), d in zip(rows, got) if d.code != lang]
# distinct prompts: pairs of corpus prompts of one language, all new to the cache
by = {}
for lang, p in rows:
    by.setdefault(lang, []).append(p)
fresh = [a + ", " + b for ps in by.values() for a in ps for b in ps if a != b][:3000]
t = time.perf_counter()
detect.detect_languages(fresh)
distinct_s = len(fresh) / (time.perf_counter() - t)
# rows through the cache: 200,000 rows over the 3,000 cached prompts
many = [fresh[i % len(fresh)] for i in range(200_000)]
t = time.perf_counter()
detect.detect_languages(many)
cached_s = len(many) / (time.perf_counter() - t)
table = {p: 1 for p in fresh}
t = time.perf_counter()
_ = [table.get(p.strip()) for p in many]
dict_s = len(many) / (time.perf_counter() - t)
# rows through the language metric (SourceRow batches of 32, prompts cached): the per-row cost inside a run
from clipgauge.metrics.base import MetricBatch
from clipgauge.metrics.language import Language
from clipgauge.sources.shards import SourceRow
metric = Language()
srcrows = [SourceRow(index=i, prompt=p, fields={"prompt": p}) for i, p in enumerate(many[:100_000])]
t = time.perf_counter()
for s in range(0, len(srcrows), 32):
    metric.compute(MetricBatch(rows=srcrows[s:s + 32]))
metric_s = len(srcrows) / (time.perf_counter() - t)
print(json.dumps({"first_call_s": first, "metric_rows_per_s": metric_s,
                  "accuracy": sum(ok.values()) / len(rows), "by_lang": by_lang,
                  "wrong": wrong, "distinct_per_s": distinct_s, "cached_rows_per_s": cached_s,
                  "dict_rows_per_s": dict_s, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(config: str) -> dict:
    mode, langs = config.split(":")
    arg = "all" if langs == "all" else json.dumps(list(COMMON))
    out = subprocess.run([sys.executable, "-c", CHILD, mode, arg, str(CORPUS)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    ap.add_argument("--configs", nargs="*", default=["two:common", "low:all", "high:all", "two:all",
                                                   "low:common", "high:common"])
    ap.add_argument("--show-wrong", action="store_true")
    ap.add_argument("--tokens", action="store_true", help="also print CLIP BPE tokens per prompt, per language")
    a = ap.parse_args()
    if a.tokens:
        means = clip_tokens_per_language()
        print("| " + " | ".join(means) + " |")
        print("|---" * len(means) + "|")
        print("| " + " | ".join(f"{v:.1f}" for v in means.values()) + " |")
        print()
    results = {c: run(c) for c in a.configs}
    if not results:  # --configs with none: the token table only
        return
    langs = sorted(next(iter(results.values()))["by_lang"])
    print("| config | accuracy | first call s | peak RSS MB | distinct prompts/s | rows/s (cached) | "
          "dict lookup rows/s | ratio | metric rows/s (batch 32) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, r in results.items():
        print(f"| {c} | {100 * r['accuracy']:.1f} % | {r['first_call_s']:.2f} | {r['rss_mb']:.0f} | "
              f"{r['distinct_per_s']:,.0f} | {r['cached_rows_per_s']:,.0f} | {r['dict_rows_per_s']:,.0f} | "
              f"{r['cached_rows_per_s'] / r['dict_rows_per_s']:.2f} | {r['metric_rows_per_s']:,.0f} |")
    print()
    print("| language | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for lang in langs:
        cells = [f"{r['by_lang'][lang][0]}/{r['by_lang'][lang][1]}" for r in results.values()]
        print(f"| {lang} | " + " | ".join(cells) + " |")
    if a.show_wrong:
        for c, r in results.items():
            print(c, r["wrong"])


if __name__ == "__main__":
    main()

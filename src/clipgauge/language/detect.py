"""Language identification of prompts: ISO 639-1 code and confidence per distinct text.

The detector is `lingua-language-detector` (https://github.com/pemistahl/lingua-py): it ships its
n-gram models inside the wheel and downloads nothing at run time, and it is the most accurate of the
offline detectors on short text such as image prompts. It is built once per process, lazily, and every
distinct text is classified once (a bounded cache), so the cost per row of a run is one dict lookup.

Text too short to tell — empty, emoji, digits or punctuation only, fewer than `MIN_LETTERS` letters (a
CJK ideograph, kana or hangul syllable counts as `CJK_LETTER_WEIGHT` letters because one of them is
a word) — gets ``Detection(None, None)`` rather than a guess.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NamedTuple

PACKAGE = "lingua-language-detector"
# The measured trade-off is in docs/languages.md and benchmarks/RESULTS.md: "two_stage" classifies with
# lingua's fast low-accuracy (trigram) models, and re-classifies a text whose confidence is below
# RECHECK_BELOW with the high-accuracy models of its RECHECK_TOP most likely languages only.
MODE = "two_stage"  # or "low_accuracy" / "high_accuracy" (one lingua mode for every text)
RECHECK_BELOW = 0.9
RECHECK_TOP = 3
# ISO 639-1 codes to choose among (None = all 75 that lingua knows: measured less accurate on prompts,
# e.g. Hindi taken for Marathi, short English for Tagalog or Norwegian; a text in a language outside the
# set is reported as the closest language in it).
LANGUAGES: tuple[str, ...] | None = (
    "en", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sv", "da", "tr", "id", "vi",
    "ru", "uk", "el", "ar", "fa", "he", "hi", "th", "zh", "ja", "ko",
)
MIN_LETTERS = 4
CJK_LETTER_WEIGHT = 2
CACHE_SIZE = 200_000

_lock = threading.Lock()
_detector: Any = None
_rechecks: dict[tuple[Any, ...], Any] = {}
_cache: OrderedDict[str, Detection] = OrderedDict()


class Detection(NamedTuple):
    """Language of one text: `code` is a lowercase ISO 639-1 code or None (too short to tell);
    `confidence` is lingua's relative confidence of that language, a probability in [0, 1], or None."""

    code: str | None
    confidence: float | None


NO_LANGUAGE = Detection(None, None)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF
            or 0xAC00 <= cp <= 0xD7AF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x2FA1F)


def letter_weight(text: str) -> int:
    """How much language evidence `text` holds: letters count 1, CJK ideographs/kana/hangul count
    `CJK_LETTER_WEIGHT`; digits, punctuation, symbols and emoji count 0."""
    n = 0
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            n += CJK_LETTER_WEIGHT if _is_cjk(ch) else 1
    return n


def _build() -> Any:
    from lingua import LanguageDetectorBuilder

    if LANGUAGES is None:
        builder = LanguageDetectorBuilder.from_all_languages()
    else:
        from lingua import IsoCode639_1

        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*[getattr(IsoCode639_1, c.upper()) for c in LANGUAGES])
    if MODE != "high_accuracy":
        builder = builder.with_low_accuracy_mode()
    return builder.build()


def _get_detector() -> Any:
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = _build()
    return _detector


def _recheck(text: str, ranked: list[Any]) -> tuple[Any, float]:
    """High-accuracy pass over the `RECHECK_TOP` likeliest languages of the first pass; the confidence is
    P(one of them) x P(this one | one of them), so it stays a probability over all candidate languages."""
    from lingua import LanguageDetectorBuilder

    top = tuple(c.language for c in ranked[:RECHECK_TOP] if c.value > 0.0)
    if len(top) < 2:
        return ranked[0].language, ranked[0].value
    with _lock:
        detector = _rechecks.get(top)
        if detector is None:
            detector = _rechecks[top] = LanguageDetectorBuilder.from_languages(*top).build()
    second = detector.compute_language_confidence_values(text)
    share = sum(c.value for c in ranked[:RECHECK_TOP])
    return second[0].language, second[0].value * share


def _classify(texts: list[str]) -> list[Detection]:
    detector = _get_detector()
    values = detector.compute_language_confidence_values_in_parallel(texts)
    out = []
    for text, ranked in zip(texts, values):
        if not ranked or ranked[0].value <= 0.0:
            out.append(NO_LANGUAGE)
            continue
        language, value = ranked[0].language, ranked[0].value
        if MODE == "two_stage" and value < RECHECK_BELOW:
            language, value = _recheck(text, ranked)
        out.append(Detection(language.iso_code_639_1.name.lower(), float(min(max(value, 0.0), 1.0))))
    return out


def detect_languages(texts: Sequence[str | None]) -> list[Detection]:
    """Language of each text, in order: `Detection(code, confidence)` with a lowercase ISO 639-1 code and
    a confidence in [0, 1], or `Detection(None, None)` for None, empty or too-short text.

    Each distinct text is classified once per process (bounded cache of `CACHE_SIZE` texts)."""
    keys = [t.strip() if isinstance(t, str) else "" for t in texts]
    todo: list[str] = []
    with _lock:
        for k in dict.fromkeys(keys):
            if k not in _cache and letter_weight(k) >= MIN_LETTERS:
                todo.append(k)
    found = dict(zip(todo, _classify(todo))) if todo else {}
    with _lock:
        for k, d in found.items():
            _cache[k] = d
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return [found.get(k) or _cache.get(k, NO_LANGUAGE) for k in keys]


def detector_info() -> dict[str, Any]:
    """Provenance of the language columns: package, version, mode and the too-short rule."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a core dependency
        version = None
    return {"package": PACKAGE, "version": version, "mode": MODE,
            "languages": "all" if LANGUAGES is None else list(LANGUAGES),
            "recheck_below": RECHECK_BELOW if MODE == "two_stage" else None,
            "recheck_top": RECHECK_TOP if MODE == "two_stage" else None,
            "min_letters": MIN_LETTERS, "cjk_letter_weight": CJK_LETTER_WEIGHT}

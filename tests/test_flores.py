"""ISO 639-1 → FLORES-200 codes and the language policy for text towers that need the prompt's language."""

from __future__ import annotations

import pytest

from clipgauge.language.flores import (
    DEFAULT_FLORES,
    FLORES_200,
    ISO_639_1,
    NOT_IN_FLORES,
    RowLanguage,
    row_languages,
    to_flores,
)


def test_flores_codes_are_nllbs_own():
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    assert list(FLORES_200) == list(FAIRSEQ_LANGUAGE_CODES)  # the tokens the NLLB tokenizer has


@pytest.mark.parametrize("code, expected", [
    ("tr", "tur_Latn"), ("zh", "zho_Hans"), ("ja", "jpn_Jpan"), ("ar", "arb_Arab"), ("ru", "rus_Cyrl"),
    ("de", "deu_Latn"), ("en", "eng_Latn"), ("fa", "pes_Arab"), ("no", "nob_Latn"), ("sw", "swh_Latn"),
    ("zh-TW", "zho_Hant"), ("zh_Hant", "zho_Hant"), ("pt-BR", "por_Latn"), ("EN", "eng_Latn"),
    ("tur_Latn", "tur_Latn"), ("TUR_LATN", "tur_Latn"), ("ceb", "ceb_Latn"), ("yue_Hant", "yue_Hant"),
    (" tr ", "tur_Latn"), (None, None), ("", None), ("  ", None),
])
def test_to_flores(code, expected):
    assert to_flores(code) == expected


def test_unknown_and_uncovered_languages_are_refused():
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        to_flores("xx")
    with pytest.raises(ValueError, match="no FLORES-200 code"):
        to_flores("la")
    with pytest.raises(ValueError, match="unknown language"):
        to_flores("ara")  # Arabic has several FLORES varieties: ISO 639-3 'ara' is ambiguous


def test_iso_map_points_into_flores():
    assert set(ISO_639_1.values()) <= set(FLORES_200)
    assert not NOT_IN_FLORES & set(ISO_639_1)


def test_every_language_the_detector_returns_has_a_code_or_is_named_as_missing():
    from clipgauge.language.detect import known_languages

    codes = known_languages()  # read from the detector's model
    assert len(codes) >= 100
    missing = {c for c in codes if c not in ISO_639_1}
    assert missing == set(NOT_IN_FLORES)  # detected prompts in these take the default, counted as such


def test_row_languages_policy(monkeypatch):
    import clipgauge.language.detect as detect

    seen = []

    def fake_detect(texts):  # the detector is another module's subject: here only which rows reach it matters
        seen.extend(texts)
        return [detect.Detection({"kırmızı kedi": "tr", "ave caesar": "la"}.get(t), 0.9 if t else None)
                for t in texts]

    monkeypatch.setattr(detect, "detect_languages", fake_detect)
    texts = ["a", "b", "c", "kırmızı kedi", "ave caesar", "🙂"]
    got = row_languages(texts, ["de", "zho_Hant", "klingon", None, "", None])
    assert got[0] == RowLanguage("deu_Latn", "column")
    assert got[1] == RowLanguage("zho_Hant", "column")
    assert got[2].flores is None and got[2].source == "column"
    assert "'language': unknown language 'klingon'" in got[2].error
    assert got[3] == RowLanguage("tur_Latn", "detected")
    assert got[4] == RowLanguage(DEFAULT_FLORES, "default")  # Latin: detected, but NLLB has no code for it
    assert got[5] == RowLanguage(DEFAULT_FLORES, "default")  # nothing detected
    assert seen == ["kırmızı kedi", "ave caesar", "🙂"]  # only rows without a given language are detected


def test_row_languages_checks_lengths():
    with pytest.raises(ValueError, match="2 prompts but 1 languages"):
        row_languages(["a", "b"], ["en"])

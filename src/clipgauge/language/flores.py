"""FLORES-200 language codes for text towers whose tokenizer needs the prompt's language (NLLB-CLIP).

NLLB's tokenizer puts a language token (``tur_Latn``, ``zho_Hans``, …: ISO 639-3 + ISO 15924 script, the
FLORES-200 codes) before the prompt's tokens, so a Turkish prompt must be tokenised as ``tur_Latn``.
:func:`to_flores` turns what a manifest or the language detector gives (an ISO 639-1 code such as ``tr``, a
tag with a region or script such as ``zh-TW`` / ``pt_BR``, an ISO 639-3 code such as ``ceb``, or a FLORES-200
code itself) into the FLORES-200 code; :func:`row_languages` applies the policy to a batch of prompts.

**Policy** (documented in docs/models.md):

* the row's ``language`` column, when present and not empty, wins; a value that names no FLORES-200 language
  is that row's error (bad input is reported, never guessed around);
* otherwise the detected language (:func:`clipgauge.language.detect.detect_languages`);
* when there is none — text too short to tell, a detected language without a FLORES-200 code (Latin), or the
  detector not installed — :data:`DEFAULT_FLORES` (``eng_Latn``, the NLLB tokenizer's own default), and the
  provenance counts those rows under source ``default``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

#: the manifest column that gives a row's prompt language (ISO 639-1 or FLORES-200 code)
LANGUAGE_COLUMN = "language"
#: what a prompt is tokenised as when neither the manifest nor the detector gives a language
DEFAULT_FLORES = "eng_Latn"

#: the 202 FLORES-200 codes of NLLB-200, in the order of transformers' ``FAIRSEQ_LANGUAGE_CODES``
_FLORES_TEXT = """
ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab arb_Arab ars_Arab ary_Arab
arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng
bho_Deva bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn
cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn ewe_Latn fao_Latn
pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn
hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn
jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn kea_Latn
khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo lvs_Latn lij_Latn lim_Latn lin_Latn
lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn
mkd_Cyrl plt_Latn mlt_Latn mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn por_Latn prs_Arab pbt_Arab
quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn
sna_Latn snd_Arab som_Latn sot_Latn spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn
tam_Taml tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn tso_Latn tuk_Latn
tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn
xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans zho_Hant zul_Latn
"""
FLORES_200: tuple[str, ...] = tuple(_FLORES_TEXT.split())

#: ISO 639-1 → FLORES-200: every ISO 639-1 language NLLB-200 has. Macrolanguages take the variety FLORES uses
#: (``ar`` Modern Standard Arabic, ``fa`` Western Persian, ``ms`` Standard Malay, ``zh`` Simplified Chinese,
#: ``no`` Bokmål, ``sw`` Swahili, ``uz`` Northern Uzbek, ``lv`` Standard Latvian, ``et``, ``mn`` Halh, ``sq``
#: Tosk Albanian, ``az`` North Azerbaijani, ``ps`` Southern Pashto, ``om`` West Central Oromo, ``mg`` Plateau
#: Malagasy, ``ff`` Nigerian Fulfulde, ``qu`` Ayacucho Quechua, ``ku`` Kurmanji, ``yi`` Eastern Yiddish).
#: Languages with two scripts in FLORES take the common one (``sr`` Cyrillic, ``ks`` Arabic, ``kr`` Latin).
ISO_639_1: dict[str, str] = {
    "af": "afr_Latn", "ak": "aka_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "ay": "ayr_Latn",
    "az": "azj_Latn", "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl", "bm": "bam_Latn", "bn": "ben_Beng",
    "bo": "bod_Tibt", "bs": "bos_Latn", "ca": "cat_Latn", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "dz": "dzo_Tibt", "ee": "ewe_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn",
    "es": "spa_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "ff": "fuv_Latn", "fi": "fin_Latn",
    "fj": "fij_Latn", "fo": "fao_Latn", "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn", "gl": "glg_Latn",
    "gn": "grn_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn",
    "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn", "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kg": "kon_Latn", "ki": "kik_Latn",
    "kk": "kaz_Cyrl", "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "kr": "knc_Latn", "ks": "kas_Arab",
    "ku": "kmr_Latn", "ky": "kir_Cyrl", "lb": "ltz_Latn", "lg": "lug_Latn", "li": "lim_Latn", "ln": "lin_Latn",
    "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn", "mi": "mri_Latn", "mk": "mkd_Cyrl",
    "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva", "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr",
    "nb": "nob_Latn", "ne": "npi_Deva", "nl": "nld_Latn", "nn": "nno_Latn", "no": "nob_Latn", "ny": "nya_Latn",
    "oc": "oci_Latn", "om": "gaz_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab",
    "pt": "por_Latn", "qu": "quy_Latn", "rn": "run_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "rw": "kin_Latn",
    "sa": "san_Deva", "sc": "srd_Latn", "sd": "snd_Arab", "sg": "sag_Latn", "si": "sin_Sinh", "sk": "slk_Latn",
    "sl": "slv_Latn", "sm": "smo_Latn", "sn": "sna_Latn", "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl",
    "ss": "ssw_Latn", "st": "sot_Latn", "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml",
    "te": "tel_Telu", "tg": "tgk_Cyrl", "th": "tha_Thai", "ti": "tir_Ethi", "tk": "tuk_Latn", "tl": "tgl_Latn",
    "tn": "tsn_Latn", "tr": "tur_Latn", "ts": "tso_Latn", "tt": "tat_Cyrl", "tw": "twi_Latn", "ug": "uig_Arab",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn", "wo": "wol_Latn", "xh": "xho_Latn",
    "yi": "ydd_Hebr", "yo": "yor_Latn", "zh": "zho_Hans", "zu": "zul_Latn",
    # withdrawn ISO 639-1 codes some tools still emit
    "iw": "heb_Hebr", "in": "ind_Latn", "ji": "ydd_Hebr",
}

#: ISO 639-1 codes that have no FLORES-200 language (detected → the default, counted in the provenance)
NOT_IN_FLORES: frozenset[str] = frozenset({
    "an", "av", "bh", "br", "ce", "co", "cv", "dv", "fy", "gv", "ia", "ie", "io", "kv", "la", "os", "rm", "sh", "vo",
    "wa"})

#: a region or script after the language that changes the FLORES code (``zh-TW`` → Traditional Chinese)
_VARIANTS = {("zh", "hant"): "zho_Hant", ("zh", "tw"): "zho_Hant", ("zh", "hk"): "zho_Hant",
             ("zh", "mo"): "zho_Hant", ("ks", "deva"): "kas_Deva",
             ("kr", "arab"): "knc_Arab"}
_FLORES_CODE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")
_BY_LOWER = {code.lower(): code for code in FLORES_200}
_ISO_639_3: dict[str, str] = {}
for _code in FLORES_200:  # an ISO 639-3 code with exactly one script in FLORES-200
    _ISO_639_3[_code[:3]] = "" if _code[:3] in _ISO_639_3 else _code
_ISO_639_3 = {k: v for k, v in _ISO_639_3.items() if v}


class RowLanguage(NamedTuple):
    """The language a row's prompt is tokenised in: its FLORES-200 code (None only with an ``error``), where
    it came from (``column``, ``detected`` or ``default``), and the row's error for a bad column value."""

    flores: str | None
    source: str
    error: str | None = None


def to_flores(code: str | None) -> str | None:
    """The FLORES-200 code of *code* (ISO 639-1, with an optional ``-``/``_`` region or script; ISO 639-3; or a
    FLORES-200 code, any case). None for None or blank; :class:`ValueError` when it names no FLORES-200 language.
    """
    if code is None or not str(code).strip():
        return None
    text = str(code).strip()
    if text.lower() in _BY_LOWER:
        return _BY_LOWER[text.lower()]
    lang, _, rest = text.replace("_", "-").partition("-")
    lang, variant = lang.lower(), rest.split("-")[0].lower() if rest else ""
    if (lang, variant) in _VARIANTS:
        return _VARIANTS[(lang, variant)]
    if lang in ISO_639_1:
        return ISO_639_1[lang]
    if lang in _ISO_639_3:
        return _ISO_639_3[lang]
    if lang in NOT_IN_FLORES:
        raise ValueError(f"language '{text}' has no FLORES-200 code (NLLB does not cover it)")
    raise ValueError(f"unknown language '{text}': use an ISO 639-1 code such as 'tr' or a FLORES-200 code such as "
                     "'tur_Latn'")


def is_flores(code: str) -> bool:
    """Whether *code* is exactly one of the 202 FLORES-200 codes (case as written there)."""
    return bool(_FLORES_CODE.match(code)) and code in _BY_LOWER.values()


def row_languages(texts: Sequence[str], given: Sequence[Any] | None = None,
                  column: str = LANGUAGE_COLUMN) -> list[RowLanguage]:
    """The language of each prompt by the policy above: *given* (the rows' *column* values, None or blank where
    absent), else the detected one, else :data:`DEFAULT_FLORES`. Detection runs once, only for rows without a
    given language; without the detector installed those rows take the default."""
    given = list(given) if given is not None else [None] * len(texts)
    if len(given) != len(texts):
        raise ValueError(f"{len(texts)} prompts but {len(given)} languages")
    out: list[RowLanguage | None] = [None] * len(texts)
    todo: list[int] = []
    for i, value in enumerate(given):
        if value is None or (isinstance(value, str) and not value.strip()):
            todo.append(i)
            continue
        try:
            out[i] = RowLanguage(to_flores(str(value)), "column")
        except ValueError as exc:
            out[i] = RowLanguage(None, "column", f"'{column}': {exc}")
    if todo:
        for i, code in zip(todo, _detected([texts[i] for i in todo])):
            out[i] = RowLanguage(code, "detected") if code else RowLanguage(DEFAULT_FLORES, "default")
    return [r for r in out if r is not None]


def _detected(texts: list[str]) -> list[str | None]:
    """FLORES-200 codes of the detected languages (None where none was detected or it has no FLORES code)."""
    try:
        from .detect import detect_languages

        detections = detect_languages(texts)
    except ImportError:  # the detector's package is not installed
        return [None] * len(texts)
    codes = []
    for d in detections:
        try:
            codes.append(to_flores(d.code))
        except ValueError:
            codes.append(None)
    return codes

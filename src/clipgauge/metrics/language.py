"""``language``: the language of every prompt, and a warning when an English-only model scores other languages.

CLIP's text tower was trained on mostly English captions with an English byte-pair vocabulary, so a prompt in
Turkish, Japanese or Arabic is split into many rare sub-word pieces and gets a less reliable score, not
comparable with the scores of English prompts. This metric makes that visible:

* columns ``language`` (lowercase ISO 639-1 code, or empty where the prompt is empty, emoji only, too short or
  too uncertain to tell) and ``language_confidence`` (the detector's probability in [0, 1]), from
  :func:`clipgauge.language.detect.detect_languages` (one detection per distinct prompt);
* a summary ``language``: rows per language (``unknown`` for rows without one), the number of non-English
  rows, the detector, and — when a model that embeds the prompts is English-only (:attr:`Encoder.languages`) —
  a warning naming how many prompts are not English.

A manifest with a ``language`` column of its own wins: a non-empty cell is taken as the row's language (lower
case, confidence empty); detection fills only the rows where it is empty. It is on in every run unless turned
off (``ScoreOptions(language=False)``, ``clipgauge score --no-language``).

The languages are a registered need (:class:`PromptLanguages`, ``Need("language")``): per batch a
:class:`RowLanguages`, worked out on first use. The text side of a model that tokenises each prompt in its language
(NLLB-CLIP) reads the same cells (:func:`given_languages`); a model that does not never touches them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Column, Metric, MetricBatch, MetricOutput, Need
from .needs import ROWS, NeedKind

#: the column a manifest may bring with the languages it knows (it wins over detection)
USER_COLUMN = "language"
UNKNOWN = "unknown"


def language_warning(non_english: int, total: int, model: str) -> str:
    """The one-line warning of a run whose English-only *model* scored *non_english* of *total* prompts."""
    return (f"{non_english} of {total} prompts are not English, but model '{model}' reads English only: their "
            "scores are less reliable and not comparable with English ones (see `language` in the summary; "
            "use a multilingual model for them)")


class Language(Metric):
    """Language identification of every row's prompt (no model of its own; nothing is embedded)."""

    name = "language"
    summary = "language of each prompt (ISO 639-1) and its probability; warns when the model reads English only"
    options: dict[str, str] = {}
    inherits = ()
    #: string columns the summary hands to :meth:`summarize` as ``Counter`` {value: rows} (None: empty)
    counted_columns = ("language",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.english_only_model: str | None = None

    def needs(self) -> list[Need]:
        return [LANGUAGES]

    def columns(self) -> list[Column]:
        return [
            Column("language", "string",
                   "language of the prompt: ISO 639-1 code, empty when too short or too unsure to tell",
                   higher_is_better=None, summarize=False),
            Column("language_confidence", "float64", "the language detector's probability of that language",
                   range=(0.0, 1.0), unit="probability", higher_is_better=None, summarize=False),
        ]

    def setup(self, context: Any) -> None:
        """Note the first model of the run that embeds the prompts and reads English only."""
        for need in getattr(context, "needs", ()):
            if need.kind == "text_embedding" and need.own_row and need.model is not None:
                encoder = getattr(context.embedder(need.model), "encoder", None)
                if getattr(encoder, "languages", None) == "en":
                    self.english_only_model = need.model
                    return

    def compute(self, batch: MetricBatch) -> MetricOutput:
        codes, confidence = batch.values[LANGUAGES].codes()
        return MetricOutput({"language": codes, "language_confidence": confidence})

    def summarize(self, values: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
        """``{"language": {"counts", "non_english", "detector", "english_only_model", "warning"}}``; counts
        are rows per ISO 639-1 code, most frequent first (``unknown``: no language)."""
        from ..language.detect import detector_info

        counts: Counter = Counter()
        for code, rows in (values.get("language") or {}).items():
            counts[UNKNOWN if code is None else str(code)] += int(rows)
        non_english = sum(v for k, v in counts.items() if k not in ("en", UNKNOWN))
        warning = None
        if self.english_only_model is not None and non_english:
            warning = language_warning(non_english, sum(counts.values()), self.english_only_model)
        return {"language": {"counts": dict(counts.most_common()), "non_english": non_english,
                             "detector": detector_info(), "english_only_model": self.english_only_model,
                             "warning": warning}}

    def provenance(self) -> dict[str, Any]:
        from ..language.detect import detector_info

        return {**super().provenance(), "detector": detector_info(), "user_column": USER_COLUMN}

    def fingerprint(self) -> dict[str, Any]:
        from ..language.detect import detector_info

        info = detector_info()
        return {**super().fingerprint(), "detector": f"{info['package']} {info['version']} {info['model']} "
                                                      f"min_confidence={info['min_confidence']}"}


class RowLanguages:
    """The languages of one batch's prompts (the value of ``Need("language")``), worked out on first use."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self.rows = rows
        self._codes: tuple[list[str | None], np.ndarray] | None = None

    def given(self, at: Sequence[int] | None = None) -> Sequence[Any]:
        """The rows' ``language`` cells as written (None where absent), of the rows *at* (default: all)."""
        return given_languages(self.rows, range(len(self.rows)) if at is None else at)

    def codes(self) -> tuple[list[str | None], np.ndarray]:
        """Per row: (lowercase ISO 639-1 code, or None; the detector's probability in [0, 1], NaN where the code
        was given or none was found). A given cell wins; each distinct remaining prompt is detected once."""
        if self._codes is None:
            from ..language.detect import detect_languages

            rows, n = self.rows, len(self.rows)
            given = [_given(row.fields.get(USER_COLUMN)) for row in rows]
            todo = [i for i in range(n) if given[i] is None]
            found = detect_languages([_text(rows[i].prompt) for i in todo])
            codes: list[str | None] = list(given)
            confidence = np.full(n, np.nan)
            for i, d in zip(todo, found):
                codes[i] = d.code
                if d.confidence is not None:
                    confidence[i] = d.confidence
            self._codes = codes, confidence
        return self._codes


class PromptLanguages(NeedKind):
    """``language``: a :class:`RowLanguages` per batch (nothing is detected until a metric asks)."""

    name = "language"
    phase = ROWS

    def compute(self, context: Any, need: Need, batch: MetricBatch) -> None:
        batch.values[need], batch.errors[need] = RowLanguages(batch.rows), [None] * len(batch.rows)


class _Cells(Sequence):
    """The ``language`` cells of some rows, read only when iterated (a model that needs no language never does)."""

    def __init__(self, rows: Sequence[Any], at: Sequence[int]) -> None:
        self.rows, self.at = rows, at

    def __len__(self) -> int:
        return len(self.at)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.rows[self.at[i]].fields.get(USER_COLUMN)


def given_languages(rows: Sequence[Any], at: Sequence[int]) -> Sequence[Any]:
    """The ``language`` cells of rows *at*, as written (ISO 639-1 or FLORES-200; None where absent), read lazily:
    what a model that tokenises by language is given (:meth:`~clipgauge.scoring.scorer.Embedder.embed_prompt_rows`)."""
    return _Cells(rows, at)


#: the need of the ``language`` metric
LANGUAGES = Need("language")


def _given(value: Any) -> str | None:
    """A user's language cell, lower case; None when empty or missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    return text or None


def _text(prompt: Any) -> str | None:
    return prompt if isinstance(prompt, str) else None

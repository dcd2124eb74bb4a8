"""Split a prompt too long for a model's text context into pieces that fit, at natural boundaries.

Used by the ``clip_chunks`` metric (``--long-prompt chunks-mean|chunks-max``). The order of preference:

1. sentence boundaries (after ``.``, ``!`` or ``?`` followed by a space, and line breaks);
2. clause boundaries inside a sentence that does not fit (after ``,``, ``;`` or ``:`` followed by a space);
3. before a conjunction or relative word (``and``, ``but``, ``or``, ``while``, ``whereas``, ``with``, ``which``,
   ``where``, ``because``) inside a clause that still does not fit;
4. between words, as a last resort (a single word longer than the context is left to the tokenizer, which cuts it).

The resulting units are then packed greedily, in order, into as few pieces as fit: consecutive units are joined
with one space while the joined text still fits. Whether a text fits is asked of the model's own tokenizer
(*fits*), so each piece holds at most ``context − 2`` tokens plus its start and end tokens. Pure Python; no torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
_CONJUNCTION = re.compile(r"\s+(?=(?:and|but|or|while|whereas|with|which|where|because)\b)", re.IGNORECASE)
_WORD = re.compile(r"\s+")
_LEVELS = (_CLAUSE, _CONJUNCTION, _WORD)


def split_prompt(text: str, fits: Callable[[str], bool]) -> list[str]:
    """The pieces of *text*: ``[text]`` when it fits (unchanged), else pieces that each fit (see the module doc).

    *fits(piece)* is True when the model's tokenizer holds *piece* without truncation. Whitespace at the cuts is
    dropped; the pieces keep their punctuation.
    """
    if fits(text):
        return [text]
    units: list[str] = []
    for sentence in _parts(text, _SENTENCE):
        units.extend(_units(sentence, fits, 0))
    return _pack(units, fits) or [text]


def _parts(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [p for p in (s.strip() for s in pattern.split(text)) if p]


def _units(text: str, fits: Callable[[str], bool], level: int) -> list[str]:
    """*text* as units that fit, splitting at the boundaries of *level* and finer ones only where needed."""
    if level >= len(_LEVELS) or fits(text):
        return [text]
    parts = _parts(text, _LEVELS[level])
    if len(parts) <= 1:
        return _units(text, fits, level + 1)
    return [u for part in parts for u in _units(part, fits, level + 1)]


def _pack(units: list[str], fits: Callable[[str], bool]) -> list[str]:
    pieces: list[str] = []
    current = ""
    for unit in units:
        joined = f"{current} {unit}" if current else unit
        if not current or fits(joined):
            current = joined
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces

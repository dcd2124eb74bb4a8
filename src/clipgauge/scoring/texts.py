"""A model's text side, :class:`PromptEncoder`: prompts → L2-normalised text embeddings, each distinct prompt
embedded once. Every :class:`~clipgauge.scoring.scorer.Embedder` owns one (``scorer.texts``).

Prompts are tokenised in blocks (bounded memory) and encoded in batches of similar token length
(:mod:`.text_batches`); embeddings are kept in memory (bounded) and, with a cache folder, on disk.

For an encoder that declares ``needs_language`` (NLLB-CLIP), each prompt is tokenised in its language: a
FLORES-200 code from the row's ``language`` value or the detector (:mod:`clipgauge.language.flores`), and the
cached embeddings are keyed by (prompt, language) — the same words in two languages are two inputs.

A prompt the tokenizer or the text encoder refuses fails alone: a block or batch that raises is retried one prompt
at a time, and each prompt that still raises gets a one-line reason (``prompt cannot be tokenized: TypeError: …``)
instead of an embedding — that row's error, never the run's. Prompts are embedded as given: the input sources
clean text that cannot be encoded (:mod:`clipgauge.text`) before it gets here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import RowError
from ..language.flores import DEFAULT_FLORES, LANGUAGE_COLUMN, row_languages
from .cache import EmbeddingCache
from .device import autocast
from .text_batches import length_batches

#: distinct prompts tokenised at a time (bounds the token tensors' memory)
TEXT_BLOCK = 4096

#: a cache key: the prompt with its prefix, or (that, FLORES-200 code) for encoders that need the language
TextKey = Any
#: longest reason given for a prompt the model refuses, in characters
MAX_REASON = 200


def prompt_problem(prompt: Any) -> str | None:
    """Why *prompt* cannot be embedded before trying (None when it can be tried): missing, or not text."""
    if prompt is None:
        return "missing prompt"
    if not isinstance(prompt, str):
        return f"prompt is not text (got {type(prompt).__name__})"
    return None


class LanguageTally:
    """Rows embedded per FLORES-200 code and per source of the code (``column``, ``detected``, ``default``)."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()

    def add(self, code: str | None, source: str) -> None:
        if code is not None:
            self.codes[code] += 1
            self.sources[source] += 1

    def provenance(self) -> dict[str, Any]:
        return {
            "codes": dict(sorted(self.codes.items())),
            "sources": dict(sorted(self.sources.items())),
            "policy": f"the row's '{LANGUAGE_COLUMN}' column (ISO 639-1 or FLORES-200), else the detected language, "
                      f"else {DEFAULT_FLORES} (source 'default')",
        }


class PromptEncoder:
    """Prompts → L2-normalised float32 text embeddings of one *encoder*, with ``prefix`` put before each prompt.

    Embeddings are kept in memory (at most *max_cached* distinct prompts: emptied when exceeded) and, with a
    :class:`~clipgauge.scoring.cache.EmbeddingCache`, on disk. :meth:`place` follows the owner's device and precision.
    ``language_tally`` counts the rows of :meth:`rows` per language (encoders that need the language).
    """

    def __init__(self, encoder: Any, *, prefix: str = "", batch_size: int = 32, max_cached: int = 100_000,
                 cache: EmbeddingCache | None = None, device: torch.device | None = None,
                 precision: str = "fp32") -> None:
        self.encoder = encoder
        self.prefix = prefix
        self.batch_size = int(batch_size)
        self.max_cached = int(max_cached)
        self.cache = cache
        self.device = device if device is not None else torch.device("cpu")
        self.precision = precision
        self.language_tally = LanguageTally()
        self._memory: dict[TextKey, tuple[np.ndarray, bool]] = {}
        self._dim: int | None = None

    @property
    def dim(self) -> int | None:
        """The embedding width D, once a prompt has been embedded (None before)."""
        if self._dim is None and self._memory:
            self._dim = int(next(iter(self._memory.values()))[0].shape[0])
        return self._dim

    def place(self, device: torch.device, precision: str) -> None:
        """Encode on *device* at *precision* from now on (cached embeddings stay valid: float32, on the host)."""
        self.device, self.precision = device, precision

    def clear(self) -> None:
        """Forget the in-memory embeddings (the on-disk cache, if any, is kept)."""
        self._memory.clear()

    def languages(self, prompts: Sequence[str], given: Sequence[Any] | None, *, count: bool = False
                  ) -> tuple[list[str | None], list[str | None]]:
        """``(FLORES-200 code or None, error or None)`` per prompt, by the policy of :mod:`clipgauge.language.flores`;
        with *count* (rows of a run), counted in ``language_tally``. All None for encoders that need no language."""
        if not self.encoder.needs_language:
            return [None] * len(prompts), [None] * len(prompts)
        found = row_languages(list(prompts), given, column=LANGUAGE_COLUMN)
        for r in found if count else ():
            self.language_tally.add(r.flores, r.source)
        return [r.flores for r in found], [r.error for r in found]

    def table(self, prompts: Sequence[str], codes: Sequence[str | None] | None = None,
              errors: dict[TextKey, str] | None = None) -> dict[TextKey, tuple[np.ndarray, bool]]:
        """Each distinct prompt (with ``prefix``) → (its embedding, whether it was truncated to the text context),
        embedded once, cached across calls. Keys: the prompt, or ``(prompt, code)`` when *codes* (one FLORES-200 code
        per prompt) are given to an encoder that needs them.

        A prompt the tokenizer or encoder refuses has no entry: its reason goes into *errors* under its key (without
        *errors*, the first one raises :class:`~clipgauge.errors.RowError` with the prompt's position)."""
        with_codes = codes is not None and self.encoder.needs_language
        wanted: dict[TextKey, TextKey] = {}
        for i, p in enumerate(prompts):
            full = self.prefix + p
            wanted[(p, codes[i]) if with_codes else p] = (full, codes[i]) if with_codes else full
        memory = self._memory
        if len(memory) + len(wanted) > self.max_cached:
            memory.clear()
        missing = sorted({k for k in wanted.values() if k not in memory}, key=_order)
        if self.cache is not None:
            still = []
            for key in missing:
                hit = self.cache.get(self.cache.key("text", _disk_key(key)))
                if hit is None:
                    still.append(key)
                else:
                    memory[key] = hit
            missing = still
        failed: dict[TextKey, str] = {}
        for block in range(0, len(missing), TEXT_BLOCK):
            for chunk in self._embedded(missing[block : block + TEXT_BLOCK], with_codes, failed):
                for key, e, t in chunk:
                    memory[key] = (e, t)
                if self.cache is not None:
                    self.cache.put_many([(self.cache.key("text", _disk_key(k)), e, t) for k, e, t in chunk])
        if not failed:
            return {k: memory[full] for k, full in wanted.items()}
        if errors is None:
            keys = [(p, codes[i]) if with_codes else p for i, p in enumerate(prompts)]
            at = next(i for i, k in enumerate(keys) if wanted[k] in failed)
            raise RowError(failed[wanted[keys[at]]], at)
        errors.update((k, failed[full]) for k, full in wanted.items() if full in failed)
        return {k: memory[full] for k, full in wanted.items() if full not in failed}

    def keyed_table(self, prompts: Sequence[str], languages: Sequence[Any] | None = None,
                    errors: dict[TextKey, str] | None = None) -> dict[TextKey, tuple[np.ndarray, bool]]:
        """:meth:`table` keyed by prompt, or by ``(prompt, language as given)`` with *languages* (ISO 639-1,
        FLORES-200 or None to detect; used by encoders that need the language). A language that names nothing raises
        :class:`~clipgauge.errors.UsageError`; a prompt the model refuses: see :meth:`table`."""
        if languages is None and not self.encoder.needs_language:
            return self.table(prompts, errors=errors)
        given = languages if languages is not None else [None] * len(prompts)
        pairs = list(dict.fromkeys(zip(prompts, given)))
        codes, language_errors = self.languages([p for p, _ in pairs], [g for _, g in pairs])
        bad = next((e for e in language_errors if e), None)
        if bad:
            from ..errors import UsageError

            raise UsageError(bad)
        failed: dict[TextKey, str] = {}
        table = self.table([p for p, _ in pairs], codes, failed)
        keyed = self.encoder.needs_language
        out: dict[TextKey, tuple[np.ndarray, bool]] = {}
        for (p, g), c in zip(pairs, codes):
            key, found = (p if languages is None else (p, g)), ((p, c) if keyed else p)
            if found in failed:
                if errors is None:
                    raise RowError(failed[found], list(zip(prompts, given)).index((p, g)))
                errors[key] = failed[found]
            else:
                out[key] = table[found]
        return out

    def rows(self, prompts: Sequence[str], languages: Sequence[Any] | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """Per row: (embeddings (N, D), NaN where the row's language is bad or the model refuses the prompt;
        truncated flags (N,); errors). The rows' languages are counted in ``language_tally``."""
        codes, errors = self.languages(prompts, languages, count=True)
        ok = [i for i, e in enumerate(errors) if e is None]
        keyed = self.encoder.needs_language
        failed: dict[TextKey, str] = {}
        table = self.table([prompts[i] for i in ok], [codes[i] for i in ok] if keyed else None, failed)
        dim = next(iter(table.values()))[0].shape[0] if table else 0
        emb = np.full((len(prompts), dim), np.nan, dtype=np.float32)
        truncated = np.zeros(len(prompts), dtype=bool)
        for i in ok:
            key = (prompts[i], codes[i]) if keyed else prompts[i]
            if failed and key in failed:
                errors[i] = failed[key]
            else:
                emb[i], truncated[i] = table[key]
        return emb, truncated, errors

    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> np.ndarray:
        """L2-normalised float32 text embeddings (N, D) of tokenised prompts."""
        inputs = {k: v.to(self.device) for k, v in tokens.items()}
        with torch.inference_mode(), autocast(self.precision, self.device):
            feats = self.encoder.encode_texts(inputs)
        return normalise(feats)

    # ----------------------------------------------------------------- refusals: each prompt alone
    def _tokenize(self, keys: list[TextKey], with_codes: bool) -> Any:
        if with_codes:
            return self.encoder.tokenize([k[0] for k in keys], languages=[k[1] for k in keys])
        return self.encoder.tokenize(list(keys))

    def _embedded(self, keys: list[TextKey], with_codes: bool, failed: dict[TextKey, str]
                  ) -> Iterator[list[tuple[TextKey, np.ndarray, bool]]]:
        """``(key, embedding, truncated)`` chunks for *keys*, one per model batch. Where the tokenizer or the encoder
        raises, the prompts are tried one at a time: those that fail alone get their reason in *failed*."""
        try:
            tokens = self._tokenize(keys, with_codes)
        except Exception as exc:  # noqa: BLE001 - which prompt? each alone says
            _reraise_memory(exc)
            if len(keys) == 1:
                failed[keys[0]] = _reason("tokenized", exc)
                return
            good = [k for k in keys if self._tokenizes(k, with_codes, failed)]
            if len(good) == len(keys):  # each tokenizes alone, not together: embedded one at a time
                for k in keys:
                    yield from self._embedded([k], with_codes, failed)
            elif good:  # the rest together
                yield from self._embedded(good, with_codes, failed)
            return
        for idx, inputs in length_batches(tokens, self.batch_size):
            try:
                emb = self.encode_tokens(inputs)
            except Exception as exc:  # noqa: BLE001 - one prompt's: each alone says
                _reraise_memory(exc)
                if len(idx) == 1:
                    failed[keys[idx[0]]] = _reason("encoded", exc)
                else:
                    for i in idx:
                        yield from self._embedded([keys[i]], with_codes, failed)
                continue
            yield [(keys[i], e, tokens.truncated[i]) for i, e in zip(idx, emb)]

    def _tokenizes(self, key: TextKey, with_codes: bool, failed: dict[TextKey, str]) -> bool:
        try:
            self._tokenize([key], with_codes)
        except Exception as exc:  # noqa: BLE001 - this prompt's reason
            _reraise_memory(exc)
            failed[key] = _reason("tokenized", exc)
            return False
        return True


def _reason(what: str, exc: Exception) -> str:
    """``prompt cannot be tokenized: TypeError: …`` on one line, at most :data:`MAX_REASON` characters."""
    message = " ".join(str(exc).split())
    return f"prompt cannot be {what}: {type(exc).__name__}{': ' if message else ''}{message}"[:MAX_REASON]


def _reraise_memory(exc: Exception) -> None:
    """Running out of memory is the run's failure, not a prompt's."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        raise exc


def normalise(feats: torch.Tensor) -> np.ndarray:
    """Rows divided by their L2 norm, as float32 on the host."""
    feats = feats.float()
    feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats.cpu().numpy()


def _order(key: TextKey) -> tuple[str, str]:
    return (key[0], key[1] or "") if isinstance(key, tuple) else (key, "")


def _disk_key(key: TextKey) -> bytes:
    """The on-disk cache key's content: the prompt, plus its language for encoders that need one."""
    if isinstance(key, tuple):
        return key[0].encode("utf-8") + b"\x00lang=" + (key[1] or "").encode("ascii")
    return key.encode("utf-8")

"""``Embedder``: loads a model once and gives L2-normalised image and prompt embeddings.

All embeddings are L2-normalised in float32. Scores are computed above this layer, by the metrics through the one
scoring step (:mod:`clipgauge.pipeline.score`): :class:`clipgauge.Scorer` is this class plus ``score`` and
``score_pairs`` (:mod:`clipgauge.pipeline.pairs`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..encoders import DEFAULT_MODEL, Encoder, early_crop_plan, resolve_encoder
from ..errors import RowError
from ..image_files import check_limit, image_bytes
from .cache import EmbeddingCache, image_content
from .cpu_threads import ForwardThreads, Waits
from .device import PrecisionWarning, autocast, check_precision, precision_warning, resolve_device
from .gpu_decode import TensorDecoder, check_decode
from .pipeline import Item, Prefetch, Skip, absent_as_skips, failed, ordered, prepare_image
from .settings import ScorerSettings
from .texts import LanguageTally, PromptEncoder, TextKey, normalise

ProgressFn = Callable[[int], None]


@dataclass
class PairScores:
    """Per-pair results, in input order.

    ``cosine`` is NaN where ``error`` is set; ``truncated`` is True where the prompt was longer than
    the model's text context and was truncated (keeping the end-of-text token).
    """

    cosine: np.ndarray
    truncated: np.ndarray
    error: list[str | None] = field(default_factory=list)
    #: (N, D) float32 L2-normalised image embeddings (NaN rows where ``error``), when asked for
    image_embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cosine)


class Embedder:
    """A model, loaded once, that embeds images and prompts (L2-normalised float32).

    Args:
        model: a model spec (``openai/clip-vit-large-patch14`` — the default, as in torchmetrics —,
            ``hf:DIR``, ``open_clip:ARCH:PRETRAINED``, ``open_clip:hf-hub:ORG/NAME``, ``demo``) or an
            :class:`~clipgauge.encoders.Encoder`.
        settings: a :class:`~clipgauge.scoring.settings.ScorerSettings` (device, batch size, precision, workers,
            prompt prefix, image limits, cache folder, decode options …); each of its fields may also be given as a
            keyword argument (``Embedder(model, device="cpu", batch_size=8)``), which overrides *settings*.
        prefetch: the image paths the first scoring call will start with: they are decoded while the model
            loads (seconds of imports and weight loading that leave the other cores idle). Used only where
            the loaded model preprocesses exactly as its config file said, so it never changes a score.

    ``settings`` keeps the settings as given; ``device`` and ``precision`` are the live ones (:meth:`to` moves them),
    ``texts`` is the text side (:class:`~clipgauge.scoring.texts.PromptEncoder`).
    """

    def __init__(self, model: str | Encoder = DEFAULT_MODEL, *, settings: ScorerSettings | None = None,
                 prefetch: Sequence[Any] | None = None, **overrides: Any) -> None:
        s = self.settings = (settings or ScorerSettings()).with_(**overrides)
        if s.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device = resolve_device(s.device)
        self.precision = check_precision(s.precision, self.device)
        slow = precision_warning(self.precision, self.device)
        if slow:
            warnings.warn(slow, PrecisionWarning, stacklevel=2)
        self.batch_size = int(s.batch_size)
        self.num_workers = int(s.num_workers) if s.num_workers else max(1, min(8, os.cpu_count() or 1))
        self.max_image_pixels, self.max_image_bytes = int(s.max_image_pixels), check_limit(s.max_image_bytes)
        self.fast_decode = bool(s.fast_decode)
        self.decode = check_decode(s.decode, self.fast_decode)
        self._prefetch: Prefetch | None = None
        if prefetch and s.cache_dir is None and not isinstance(model, Encoder) and self.decode == "cpu":
            plan = early_crop_plan(model)
            if plan is not None:  # the main thread is busy loading: leave it a core
                workers = max(1, min(self.num_workers, (os.cpu_count() or 2) - 1))
                self._prefetch = Prefetch(prefetch, plan, workers=workers, max_pixels=self.max_image_pixels,
                                          max_bytes=self.max_image_bytes,
                                          draft=plan.short if self.fast_decode else None)
        if isinstance(model, Encoder):
            self.encoder = model
        else:
            try:
                self.encoder = resolve_encoder(model, trust_remote_code=s.trust_remote_code)
            except BaseException:
                if self._prefetch is not None:
                    self._prefetch.cancel()  # no decoding for a model that will not load
                raise
        self.encoder.to(self.device)
        self.tensor_decoder = TensorDecoder(self.encoder.crop_plan, self.max_image_pixels,
                                            self.max_image_bytes) if self.decode == "gpu" else None
        self.prompt_prefix = s.prompt_prefix
        self.max_cached_prompts = int(s.max_cached_prompts)
        self._threads = ForwardThreads(Waits())  # one torch thread for a CPU forward pass while decode-bound
        self._draft = self.encoder.input_size if self.fast_decode else None
        self.cache: EmbeddingCache | None = None
        if s.cache_dir is not None:
            self.cache = EmbeddingCache(s.cache_dir, {
                "weights_sha256": self.encoder.weights_sha256(),
                "preprocessing": self.encoder.preprocessing(),
                "precision": self.precision,
                "max_image_pixels": self.max_image_pixels,
                "fast_decode": self.fast_decode,
                **({"decode": self.decode} if self.decode != "cpu" else {}),  # exact-path caches stay valid
            })
        #: the text side: prompt embeddings, cached (scoring/texts.py)
        self.texts = PromptEncoder(self.encoder, prefix=self.prompt_prefix, batch_size=self.batch_size,
                                   max_cached=self.max_cached_prompts, cache=self.cache, device=self.device,
                                   precision=self.precision)

    # ----------------------------------------------------------------- properties
    @property
    def model_spec(self) -> str:
        return self.encoder.spec

    @property
    def language_tally(self) -> LanguageTally:
        """Rows embedded per language (encoders that need the language), for the provenance."""
        return self.texts.language_tally

    @property
    def context_length(self) -> int:
        """The model's text context in tokens (77 for CLIP)."""
        return self.encoder.context_length

    def to(self, device: str | torch.device, precision: str | None = None) -> Embedder:
        """Move the model to *device* (e.g. to the GPU only while scoring), optionally changing precision.

        Cached prompt embeddings stay valid: they are kept on the host in float32.
        """
        dev = resolve_device(device)
        self.precision = check_precision(precision or self.precision, dev)
        if dev != self.device:
            self.encoder.to(dev)
            self.device = dev
        self.texts.place(self.device, self.precision)
        return self

    # ----------------------------------------------------------------- public API
    def embed_texts(self, texts: Sequence[str] | str, languages: Sequence[Any] | None = None) -> np.ndarray:
        """L2-normalised text embeddings, float32 (N, D). ``prompt_prefix`` is applied.

        *languages*: for encoders that need the prompt's language (NLLB-CLIP), one ISO 639-1 or FLORES-200 code
        per text (None: detected); without it each text's language is detected. Ignored by other encoders.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if isinstance(languages, str):
            languages = [languages] * len(texts)
        emb, _ = self._embed_prompts(texts, languages)
        return emb

    def embed_images(self, images: Iterable[Any]) -> np.ndarray:
        """L2-normalised image embeddings, float32 (N, D). Raises :class:`RowError` for a bad image."""
        rows = []
        for index, emb, error in self._image_embeddings(images):
            if error is not None:
                raise RowError(error, index)
            rows.append(emb)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def try_embed_images(self, images: Iterable[Any]) -> tuple[np.ndarray, list[str | None]]:
        """Like :meth:`embed_images`, but a bad image gives a NaN row and its reason instead of raising."""
        got = list(self.stream_image_embeddings(images))
        dim = next((e.shape[0] for e, _ in got if e is not None), 0)
        out = np.full((len(got), dim), np.nan, dtype=np.float32)
        for i, (e, _) in enumerate(got):
            if e is not None:
                out[i] = e
        return out, [err for _, err in got]

    def stream_image_embeddings(self, images: Iterable[Any]) -> Iterator[tuple[np.ndarray | None, str | None]]:
        """``(L2-normalised float32 embedding (D,), None)`` or ``(None, reason)`` per image, in input order, lazily:
        *images* is read ahead only as far as the decode threads' window, so a stream may span a whole run. A
        :class:`~clipgauge.scoring.pipeline.Skip` passes its reason through; a missing file never reaches a thread."""
        for _, emb, error in self._image_embeddings(images):
            yield emb, error

    # ----------------------------------------------------------------- text (self.texts: PromptEncoder)
    def prompt_table(self, prompts: Sequence[str], languages: Sequence[Any] | None = None
                     ) -> dict[TextKey, tuple[np.ndarray, bool]]:
        """Each distinct prompt → (its L2-normalised float32 embedding with ``prompt_prefix``, whether it was
        truncated to the text context). Embedded once each, in batches of similar token length, and cached.

        With *languages* (one per prompt: ISO 639-1, FLORES-200 or None to detect; used by encoders that need
        the language) the keys are ``(prompt, language as given)``."""
        if languages is None:
            return self.texts.keyed_table(sorted(set(prompts)))
        return self.texts.keyed_table(list(prompts), list(languages))

    def clear_text_cache(self) -> None:
        """Forget the in-memory prompt embeddings (the on-disk cache, if any, is kept)."""
        self.texts.clear()

    def truncated(self, prompts: Sequence[str]) -> list[bool]:
        """Whether each prompt (with ``prompt_prefix``) is longer than the text context."""
        table = self.texts.keyed_table(sorted(set(prompts)))
        return [table[p][1] for p in prompts]

    def embed_prompt_rows(self, prompts: Sequence[str], languages: Sequence[Any] | None = None
                          ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """Per row: (L2-normalised float32 embeddings (N, D), truncated flags (N,), errors). For an encoder that
        needs the language, *languages* are the rows' given languages (ISO 639-1 or FLORES-200; None or blank:
        detect), a bad one being that row's error (NaN embedding); other encoders ignore them. The rows' languages
        are counted in the provenance (``text.languages``)."""
        return self.texts.rows(prompts, languages)

    def _embed_prompts(self, prompts: list[str], languages: Sequence[Any] | None = None
                       ) -> tuple[np.ndarray, list[bool]]:
        if not prompts:
            return np.zeros((0, 0), dtype=np.float32), []
        table = self.texts.keyed_table(prompts, languages)
        keys = prompts if languages is None else list(zip(prompts, languages))
        return np.stack([table[k][0] for k in keys]), [table[k][1] for k in keys]

    # ----------------------------------------------------------------- images
    def _prepare(self, src: Any) -> Item:
        """Worker thread: cache look-up, else decode + preprocess (a uint8 crop when the encoder splits its
        preprocessing, else the float tensor). Never raises."""
        key = None
        if self.cache is not None and not isinstance(src, Skip):
            try:
                src = image_bytes(src, self.max_image_bytes)  # a path read, bytes over the limit refused
                key = self.cache.key("image", image_content(src))
            except Exception as exc:  # noqa: BLE001 - that row's error
                return failed(exc)
            hit = self.cache.get(key)
            if hit is not None:
                return Item(embedding=hit[0])
        plan, gpu = self.encoder.crop_plan, self.tensor_decoder
        item = gpu.prepare(src) if gpu is not None else prepare_image(
            src, plan.crop if plan is not None else self.encoder.preprocess, max_pixels=self.max_image_pixels,
            draft=self._draft, max_bytes=self.max_image_bytes)
        item.key = key
        return item

    def _prepared(self, images: Iterable[Any]) -> Iterator[tuple[int, Item]]:
        """Decode + preprocess in worker threads, in order, with a bounded look-ahead; the first images
        may already have been decoded while the model loaded (``prefetch``); a missing file is a Skip at once."""
        prefetch, self._prefetch = self._prefetch, None
        held = len(prefetch.jobs) if prefetch is not None else 0
        ready = prefetch.take(self.encoder.crop_plan, self.max_image_pixels, self._draft,
                              self.max_image_bytes) if prefetch else None
        images = absent_as_skips(images, held)
        window = max(2 * self.batch_size, 4 * self.num_workers)
        group = max(1, min(16, window // (4 * self.num_workers)))  # sources per hand-over to a thread
        return ordered(images, self._prepare, workers=self.num_workers, window=window, ready=ready,
                       waits=self._threads.waits, group=group)

    def _image_embeddings(self, images: Iterable[Any]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """Yield ``(index, normalised embedding or None, error or None)`` in input order."""
        pending: list[tuple[int, Item]] = []
        n_pixels = 0

        def flush() -> Iterator[tuple[int, np.ndarray | None, str | None]]:
            todo = [item for _, item in pending if item.pixels is not None]
            if todo and self.tensor_decoder is not None:  # JPEGs decoded on the device (those it fails: reasons)
                todo = self.tensor_decoder.decode_batch(todo, self.device)
            if todo:
                emb = self._encode_image_batch([item.pixels for item in todo])
                for item, e in zip(todo, emb):
                    item.embedding, item.pixels = e, None
                if self.cache is not None:
                    self.cache.put_many([(item.key, item.embedding, False) for item in todo if item.key])
            for i, item in pending:
                yield i, item.embedding, item.skip
            pending.clear()

        for i, item in self._prepared(images):
            if item.pixels is None and not n_pixels:  # nothing waits for the model before it: out at once
                yield i, item.embedding, item.skip
                continue
            pending.append((i, item))
            n_pixels += item.pixels is not None
            if n_pixels >= self.batch_size or len(pending) >= 4 * self.batch_size:  # bounded however few decode
                yield from flush()
                n_pixels = 0
        if pending:
            yield from flush()

    def _encode_image_batch(self, pixels: list[torch.Tensor | np.ndarray]) -> np.ndarray:
        crops = isinstance(pixels[0], np.ndarray) or pixels[0].dtype == torch.uint8  # uint8 crops (device decode)
        batch = torch.from_numpy(np.stack(pixels)) if isinstance(pixels[0], np.ndarray) else torch.stack(pixels)
        if self.device.type == "cuda" and batch.device.type == "cpu":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)  # crops cross as uint8: a quarter of the bytes
        if crops:
            batch = self.encoder.crop_plan.normalize(batch)  # exact arithmetic, checked once per device
        with torch.inference_mode(), autocast(self.precision, self.device), self._threads.forward(self.device):
            feats = self.encoder.encode_images(batch)
        return normalise(feats)

    # ----------------------------------------------------------------- provenance
    def provenance(self) -> dict[str, Any]:
        """Everything needed to reproduce a number produced by this model (its settings, versions …)."""
        from .provenance import scorer_provenance

        return scorer_provenance(self)


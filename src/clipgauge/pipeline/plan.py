"""What a scoring run does, as data (:class:`ScoreOptions`, picklable for Ray), and the loaded state that does it
(:class:`ScoringPlan`: the metrics, and one embedder per distinct model, loaded once per process)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..decode import DEFAULT_MAX_PIXELS
from ..defaults import DEFAULT_MODEL
from ..encoders.registry import parse_model_spec
from ..errors import ModelLoadError, UsageError
from ..image_files import DEFAULT_MAX_IMAGE_BYTES
from ..metrics.base import Column, Metric, Need
from ..metrics.registry import MetricSpec, metric_class, parse_metric
from ..sources.shards import ID_COLUMNS
from .timing import ModelTimings

#: Columns the pipeline itself adds besides the row's identity (``ID_COLUMNS``): its error, saved embeddings.
ERROR_COLUMN = "error"
#: the column whose value groups rows for run columns (the prompt)
GROUP_COLUMN = "prompt"
EMBEDDING_COLUMNS = ("image_embedding", "text_embedding")


@dataclass
class ScoreOptions:
    """Everything that decides a run's numbers and how it runs (no loaded objects: it pickles for Ray).

    ``metrics`` are specs (``"clip"``, ``"clip:scale=clip-s"``, :class:`MetricSpec`) or metric classes with options
    ``(cls, {"key": "value"})``; a ``model`` or ``scale`` option a metric accepts and inherits (``Metric.inherits``)
    but is not given is taken from ``model`` and ``scale``.
    ``scale`` is the ``clip`` metric's ``score`` scale (``cosine``, ``torchmetrics`` = 100 × cosine, ``clip-s``).
    ``language``: add the ``language`` metric (each prompt's language, a warning for English-only models) unless
    it is already among ``metrics`` or no metric reads the rows' prompts.
    ``long_prompt``: ``truncate`` (the standard CLIP score only), or ``chunks-mean`` / ``chunks-max``, which add the
    ``clip_chunks`` metric (its own columns) unless it is already among ``metrics``.
    """

    metrics: Sequence[Any] = ("clip",)
    model: str = DEFAULT_MODEL
    scale: str = "cosine"
    device: str = "auto"
    batch_size: int = 32
    precision: str = "fp32"
    num_workers: int | None = None
    prompt_prefix: str = ""
    trust_remote_code: bool = False
    cache_dir: str | os.PathLike | None = None
    fast_decode: bool = False
    decode: str = "cpu"
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    #: image files (and in-memory image bytes) larger than this are error rows, never read whole
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    save_embeddings: bool = False
    strict: bool = False
    language: bool = True
    long_prompt: str = "truncate"
    _resolved: list[tuple[type[Metric], dict[str, str]]] | None = field(default=None, repr=False)

    def resolved(self) -> list[tuple[type[Metric], dict[str, str]]]:
        """The metric classes and their full options (defaults applied), resolved once, where the registry is
        (so Ray actors need no registration of their own)."""
        if self._resolved is None:
            out = []
            from ..metrics.clip_chunks import long_prompt_metric

            extra = long_prompt_metric(self.long_prompt)
            items = list(self.metrics)
            if extra is not None and extra not in items:
                items.append(extra)
            for item in items:
                if isinstance(item, tuple):
                    cls, opts = item
                else:
                    spec = item if isinstance(item, MetricSpec) else parse_metric(str(item))
                    cls, opts = metric_class(spec.name), dict(spec.options)
                opts = dict(opts)
                for key, value in (("model", self.model), ("scale", self.scale)):
                    if key in cls.options and key in cls.inherits and not opts.get(key):
                        if key == "model":
                            parse_model_spec(value)  # a bad run model is its own error, not a metric option's
                        opts[key] = value
                out.append((cls, opts))
            if not out:
                raise UsageError("no metric to compute")
            if self.language and not any(cls.name == "language" for cls, _ in out) and any(
                    n.kind == "text_embedding" and n.own_row for cls, opts in out for n in cls(**opts).needs()):
                out.append((metric_class("language"), {}))  # the prompts' languages (metrics/language.py)
            self._resolved = out
        return self._resolved

    def scorer_kwargs(self) -> dict[str, Any]:
        """:class:`~clipgauge.Scorer` arguments every model of the run is loaded with."""
        return dict(device=self.device, batch_size=self.batch_size, precision=self.precision,
                    num_workers=self.num_workers, prompt_prefix=self.prompt_prefix,
                    trust_remote_code=self.trust_remote_code, cache_dir=self.cache_dir, fast_decode=self.fast_decode,
                    decode=self.decode, max_image_pixels=self.max_image_pixels, max_image_bytes=self.max_image_bytes)

    def with_(self, **changes: Any) -> ScoreOptions:
        return replace(self, **changes)


def build_metrics(options: ScoreOptions) -> list[Metric]:
    """The metric instances of *options*; :class:`UsageError` for bad options or clashing column names."""
    metrics = [cls(**opts) for cls, opts in options.resolved()]
    seen: dict[str, str] = {}
    reserved = set(ID_COLUMNS) | {ERROR_COLUMN} | set(EMBEDDING_COLUMNS)
    for m in metrics:
        for c in m.columns():
            if c.name in reserved:
                raise UsageError(f"metric '{m.name}' declares column '{c.name}', which clipgauge itself writes")
            if c.name in seen:
                raise UsageError(f"metrics '{seen[c.name]}' and '{m.name}' both write column '{c.name}': "
                                 "give them different models or options, or keep one")
            seen[c.name] = m.name
    return metrics


def needs_prompts(metrics: Sequence[Metric]) -> bool:
    """Whether *metrics* read each row's own prompt (False for image-only metrics such as ``zeroshot``: the
    input then needs no prompt column, sidecar or caption)."""
    return any(n.kind == "text_embedding" and n.own_row for m in metrics for n in m.needs())


class ScoringPlan:
    """The loaded metrics and models of a run, in one process. Models are loaded on first use, once each.

    *prefetch*: the first image paths of the input, decoded while the first model loads (see
    :class:`~clipgauge.Scorer`). *resolve_path* turns a cell of a reference-image column into a path.
    *embedders*: ``{spec: Scorer}`` already loaded, used instead of loading those specs again.
    """

    def __init__(self, options: ScoreOptions, *, prefetch: Sequence[Any] | None = None,
                 resolve_path: Any = None, embedders: dict[str, Any] | None = None) -> None:
        self.options = options
        self.metrics = build_metrics(options)
        self.resolve_path = resolve_path or (lambda value: Path(value).expanduser())
        self._embedders: dict[str, Any] = dict(embedders or {})  # models already loaded (the tracker's)
        self.timings = ModelTimings()  # per model: load and embedding time, memory (pipeline/timing.py)
        self._prefetch = prefetch
        self._dims: dict[str, int] = {}
        self._references: dict[Need, dict[Any, tuple[Any, str | None]]] = {}
        needs: dict[Need, None] = {}
        for m in self.metrics:
            for n in m.needs():
                needs.setdefault(n, None)
        self.primary_model = next((m for metric in self.metrics for m in metric.models()), None)
        if options.save_embeddings:
            if self.primary_model is None:
                raise UsageError("saving embeddings needs a metric that uses a CLIP model")
            needs.setdefault(Need("image_embedding", self.primary_model), None)
            if needs_prompts(self.metrics):  # image-only runs save no text embedding (their rows have no prompt)
                needs.setdefault(Need("text_embedding", self.primary_model), None)
        # the row's own prompt first (a bad prompt means its image need not be decoded), then images
        self.needs = sorted(needs, key=lambda n: (n.column is not None, n.kind != "text_embedding"))
        own_image_models = {n.model for n in self.needs if n.kind == "image_embedding" and n.own_row}
        self.decode_once = any(n.kind == "image" for n in self.needs) or len(own_image_models) > 1

    # ----------------------------------------------------------------- models
    def embedder(self, spec: str):
        """The :class:`~clipgauge.Scorer` of model *spec* (loaded on first use, shared by every metric)."""
        if spec not in self._embedders:
            from ..scoring.scorer import Scorer

            prefetch, self._prefetch = self._prefetch, None
            try:
                self._embedders[spec] = self.timings.load(spec, lambda: Scorer(
                    spec, prefetch=prefetch if not self.decode_once else None, **self.options.scorer_kwargs()))
            except ModelLoadError as exc:
                option = self._option_naming(spec)
                if option is None:
                    raise
                raise ModelLoadError(f"{option}: {exc}") from None
        return self._embedders[spec]

    def _option_naming(self, spec: str) -> str | None:
        """``NAME:OPTION=SPEC`` of the metric option that gave model *spec* (None for the run's own model)."""
        if spec == self.options.model:
            return None
        for m in self.metrics:
            for key in m.model_options:
                if str(m.config.get(key) or "").strip() == spec:
                    return f"{m.name}:{key}={spec}"
        return None

    def load(self) -> ScoringPlan:
        """Load every model and set every metric up (done before the first batch)."""
        for spec in dict.fromkeys(n.model for n in self.needs if n.model is not None):
            self.embedder(spec)
        for m in self.metrics:
            m.setup(self)
        return self

    def reference_cache(self, need: Need) -> dict[Any, tuple[Any, str | None]]:
        """Embeddings of reference images already seen, per need (kept between batches, bounded by the caller)."""
        return self._references.setdefault(need, {})

    @property
    def embedders(self) -> dict[str, Any]:
        return dict(self._embedders)

    def embedding_dim(self, spec: str) -> int:
        """The embedding width D of model *spec*."""
        if spec not in self._dims:
            self._dims[spec] = int(self.embedder(spec).embed_texts([""]).shape[1])
        return self._dims[spec]

    # ----------------------------------------------------------------- schema
    def columns(self) -> list[Column]:
        """Every metric's columns (its run columns last), in metric order."""
        return [c for m in self.metrics for c in (*m.columns(), *m.run_columns())]

    @property
    def run_column_names(self) -> set[str]:
        """Columns filled in once the whole run is scored (:meth:`Metric.finalize`)."""
        return {c.name for m in self.metrics for c in m.run_columns()}

    def output_schema(self, fields):
        """The schema of every output: row ids, the carried *fields* (a ``pyarrow.Schema``) minus the names the
        run writes itself, the metrics' columns, ``error``, and the embeddings when saved."""
        import pyarrow as pa

        columns = self.columns()
        reserved = set(ID_COLUMNS) | {c.name for c in columns} | {ERROR_COLUMN} | set(EMBEDDING_COLUMNS)
        out = [pa.field("row_id", pa.int64()), pa.field("row_source", pa.string())]
        out += [f for f in fields if f.name not in reserved]
        if self.run_column_names and GROUP_COLUMN not in {f.name for f in out}:
            out.append(pa.field(GROUP_COLUMN, pa.string()))  # run columns are computed per prompt
        out += [pa.field(c.name, c.arrow_type()) for c in columns]
        out.append(pa.field(ERROR_COLUMN, pa.string()))
        if self.options.save_embeddings:
            vec = pa.list_(pa.float16(), self.embedding_dim(self.primary_model))
            out += [pa.field(name, vec) for name in EMBEDDING_COLUMNS]
        return pa.schema(out)

    # ----------------------------------------------------------------- provenance
    def fingerprint(self) -> dict[str, Any]:
        """What must match to resume a run: every model's weights and preprocessing, the metrics and options."""
        models = {}
        for spec, scorer in self._embedders.items():
            p = scorer.provenance()
            models[spec] = {**p["model"], "preprocessing": p["preprocessing"]}
        primary = models.get(self.primary_model, {})
        return {
            "model_weights_sha256": primary.get("weights_sha256"),
            "model_family": primary.get("family"),
            "context_length": primary.get("context_length"),
            "preprocessing": primary.get("preprocessing"),
            "precision": self.options.precision,
            "prompt_prefix": self.options.prompt_prefix,
            "max_image_pixels": self.options.max_image_pixels,
            # only when changed: runs written before the option existed keep their fingerprint (and resume)
            **({"max_image_bytes": self.options.max_image_bytes}
               if self.options.max_image_bytes != DEFAULT_MAX_IMAGE_BYTES else {}),
            "scale": self.options.scale,
            "save_embeddings": self.options.save_embeddings,
            "metrics": [m.fingerprint() for m in self.metrics],
            "other_models": {s: m.get("weights_sha256") for s, m in models.items() if s != self.primary_model},
        }

    def provenance(self) -> dict[str, Any]:
        """The primary model's full provenance (as before metrics existed), plus every model and metric."""
        if self.primary_model in self._embedders:
            base = dict(self._embedders[self.primary_model].provenance())
        else:  # no metric uses a CLIP model: what is left of the provenance still says what ran
            import platform
            from datetime import datetime, timezone

            from .._version import __version__
            from ..provenance import library_versions

            base = {"clipgauge_version": __version__,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "precision": self.options.precision, "device": self.options.device,
                    "libraries": library_versions(), "platform": platform.platform()}
        base["metrics"] = {getattr(m, "key", m.name): m.provenance() for m in self.metrics}
        others = {s: e.provenance()["model"] for s, e in self._embedders.items() if s != self.primary_model}
        if others:
            base["models"] = others
        return base

    def close(self) -> None:
        for scorer in self._embedders.values():
            if scorer.cache is not None:
                scorer.cache.close()

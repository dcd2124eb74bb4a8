"""What a scoring run does, as data (:class:`ScoreOptions`, picklable for Ray), and the loaded state that does it
(:class:`ScoringPlan`: the metrics, and one embedder per distinct model, loaded once per process)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..defaults import DEFAULT_MODEL
from ..encoders.registry import parse_model_spec
from ..errors import ModelLoadError, UsageError
from ..image_files import DEFAULT_MAX_IMAGE_BYTES
from ..metrics.base import Column, Metric, Need
from ..metrics.needs import IMAGES, PHASES, need_kind
from ..metrics.registry import MetricSpec, metric_class, parse_metric
from ..paths import resolve_path as resolve_relative
from ..scoring.settings import ScorerSettings
from ..sinks.sharded import EMBEDDING_COLUMNS
from ..sources.shards import ID_COLUMNS
from .timing import ModelTimings

#: Columns the pipeline itself adds besides the row's identity (``ID_COLUMNS``): its error, saved embeddings.
ERROR_COLUMN = "error"
#: the column whose value groups rows for run columns (the prompt)
GROUP_COLUMN = "prompt"


@dataclass(frozen=True)
class ScoreOptions(ScorerSettings):
    """Everything that decides a run's numbers and how it runs (no loaded objects: it pickles for Ray). Immutable:
    :meth:`with_` gives a changed copy.

    The model's settings (``device``, ``batch_size``, ``precision``, ``num_workers``, ``prompt_prefix``, the image
    limits, ``cache_dir``, ``fast_decode``, ``decode`` …) are those of
    :class:`~clipgauge.scoring.settings.ScorerSettings`, declared there once; every model of the run is loaded with
    them. The run's own options:

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
    save_embeddings: bool = False
    strict: bool = False
    language: bool = True
    long_prompt: str = "truncate"

    def resolved(self) -> list[tuple[type[Metric], dict[str, str]]]:
        """The metric classes and their options (``model`` and ``scale`` inherited), computed anew at each call:
        see :func:`resolve_metrics`."""
        return resolve_metrics(self)

    def resolve(self) -> ScoreOptions:
        """A copy whose ``metrics`` are the resolved ``(class, options)`` pairs (language and long-prompt metrics
        included), so the classes travel with it (Ray actors then need no registration of their own). Resolving
        it again gives the same metrics."""
        return self.with_(metrics=tuple(resolve_metrics(self)))

    def scorer_kwargs(self) -> dict[str, Any]:
        """The scorer settings as keyword arguments (what every model of the run is loaded with)."""
        return dict(vars(self.scorer_settings()))


def resolve_metrics(options: ScoreOptions) -> list[tuple[type[Metric], dict[str, str]]]:
    """The metric classes of *options* and their options, in order: the ``metrics`` (specs looked up in the
    registry), the long-prompt metric, and the ``language`` metric where it applies. :class:`UsageError` for an
    unknown metric or strategy, a bad run model, or no metric at all."""
    from ..metrics.clip_chunks import long_prompt_metric

    def one(item: Any) -> tuple[type[Metric], dict[str, str]]:
        if isinstance(item, tuple):
            cls, opts = item
        else:
            spec = item if isinstance(item, MetricSpec) else parse_metric(str(item))
            cls, opts = metric_class(spec.name), dict(spec.options)
        opts = dict(opts)
        for key, value in (("model", options.model), ("scale", options.scale)):
            if key in cls.options and key in cls.inherits and not opts.get(key):
                if key == "model":
                    parse_model_spec(value)  # a bad run model is its own error, not a metric option's
                opts[key] = value
        return cls, opts

    items = list(options.metrics)
    out = [one(item) for item in items]
    extra = long_prompt_metric(options.long_prompt)
    if extra is not None and extra not in items:
        added = one(extra)
        if added not in out:  # already resolved (``resolve()``)
            out.append(added)
    if not out:
        raise UsageError("no metric to compute")
    if options.language and not any(cls.name == "language" for cls, _ in out) and any(
            n.kind == "text_embedding" and n.own_row for cls, opts in out for n in cls(**opts).needs()):
        out.append((metric_class("language"), {}))  # the prompts' languages (metrics/language.py)
    return out


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
    :class:`~clipgauge.scoring.scorer.Embedder`). *resolve_path* turns a cell of a reference-image column into a
    path (default: :func:`clipgauge.paths.resolve_path` against the working folder).
    *embedders*: ``{spec: Embedder}`` already loaded (a :class:`~clipgauge.Scorer` is one), used instead of loading
    those specs again.
    """

    def __init__(self, options: ScoreOptions, *, prefetch: Sequence[Any] | None = None,
                 resolve_path: Any = None, embedders: dict[str, Any] | None = None) -> None:
        self.options = options
        self.metrics = build_metrics(options)
        self.resolve_path = resolve_path or (lambda value: resolve_relative(value, "."))
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
        # the row's own needs first, each in its kind's phase order (a bad prompt means its image is not decoded)
        self.needs = sorted(needs, key=lambda n: (n.column is not None, PHASES.index(need_kind(n.kind).phase_of(n))))
        images = [need_kind(n.kind) for n in self.needs if need_kind(n.kind).phase_of(n) == IMAGES]
        self.decode_once = len(images) > 1 or any(k.decoded for k in images)  # each image decoded once for all

    # ----------------------------------------------------------------- models
    def embedder(self, spec: str):
        """The :class:`~clipgauge.scoring.scorer.Embedder` of model *spec* (loaded on first use with the run's
        scorer settings, shared by every metric)."""
        if spec not in self._embedders:
            from ..scoring.scorer import Embedder

            prefetch, self._prefetch = self._prefetch, None
            try:
                self._embedders[spec] = self.timings.load(spec, lambda: Embedder(
                    spec, prefetch=prefetch if not self.decode_once else None,
                    settings=self.options.scorer_settings()))
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
        """The embedding width D of model *spec* (from a prompt it embedded already, else by embedding one)."""
        if spec not in self._dims:
            embedder = self.embedder(spec)
            self._dims[spec] = embedder.texts.dim or int(embedder.embed_texts([""]).shape[1])
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

"""The metric seam: what every score declares, and the batch of inputs it is computed from.

A metric is a small class. It declares

* what it **needs** (:class:`Need`): image or text embeddings of a model (the row's own image and prompt, or a
  column of references), the decoded image, or nothing shared (it loads a model of its own in :meth:`Metric.setup`);
* the **columns** it adds (:class:`Column`: name, type, range, unit, higher-is-better);
* how the **summary** aggregates it (:meth:`Metric.summarize`, by default :func:`~clipgauge.stats.summary.describe`
  of each float column);
* what it records in **provenance** (:meth:`Metric.provenance`) and what must match to resume a run
  (:meth:`Metric.fingerprint`).

The pipeline (:mod:`clipgauge.pipeline.score`) computes every need once per batch for all metrics (each distinct
model runs once per image and per prompt) and calls :meth:`Metric.compute`. Metric math is pure numpy over
embeddings; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..encoders import registry as model_specs
from ..errors import UsageError
from .needs import need_kind

if TYPE_CHECKING:
    from ..encoders.spec import ModelSpec
    from ..sources.shards import SourceRow

#: Arrow types a column may have (``float64`` values are NaN/None where a row has no value)
COLUMN_TYPES = ("float64", "bool", "int64", "string")



@dataclass(frozen=True)
class Column:
    """One result column a metric adds.

    ``range`` is the closed interval the values lie in (None where unbounded); ``unit`` says what a value is
    (``cosine``, ``100 x cosine``, ``probability``…); ``higher_is_better`` is None for flags and diagnostics.
    ``summarize``: whether the summary describes it (mean, CI, …) and the printed table shows it.
    """

    name: str
    type: str = "float64"
    description: str = ""
    range: tuple[float | None, float | None] | None = None
    unit: str = ""
    higher_is_better: bool | None = True
    summarize: bool = True

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: type must be one of {', '.join(COLUMN_TYPES)}")

    def arrow_type(self):
        import pyarrow as pa

        return {"float64": pa.float64(), "bool": pa.bool_(), "int64": pa.int64(), "string": pa.string()}[self.type]

    def describe(self) -> dict[str, Any]:
        """The column's declaration as JSON (written to the summary, read by the report)."""
        return {"name": self.name, "type": self.type, "description": self.description,
                "range": list(self.range) if self.range else None, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "summarize": self.summarize}


@dataclass(frozen=True)
class Need:
    """A shared input of a metric.

    * ``image_embedding`` of ``model``: the row's image (``column`` None) or the image a ``column`` names
      (a path, resolved like the row's image); values are L2-normalised float32 (N, D), NaN rows where missing.
    * ``text_embedding`` of ``model``: the row's prompt (``column`` None; ``prompt_prefix`` applied), or the
      text(s) in ``column`` (``many``: a list of texts, or a JSON array, per row); (N, D) or, with ``many``, a
      list of (k, D) arrays / None.
    * ``image``: the decoded RGB ``PIL.Image`` of the row (None where it failed).
    * ``language``: the languages of the rows' prompts (:class:`~clipgauge.metrics.language.RowLanguages`).
    * any kind registered with :func:`~clipgauge.metrics.needs.register_need` (it says what it gives).
    """

    kind: str
    model: str | None = None
    column: str | None = None
    many: bool = False

    def __post_init__(self) -> None:
        need_kind(self.kind)  # ValueError naming the known kinds

    @property
    def own_row(self) -> bool:
        """Whether this is the row's own image or prompt (its failure is the row's error)."""
        return self.column is None


@dataclass
class MetricBatch:
    """The inputs of one batch of rows, computed once for every metric.

    ``values[need]`` as described in :class:`Need`; ``errors[need][i]`` the reason row *i* has no value for
    that need (None when it has one); ``truncated[need]`` (text needs of prompts) whether the text was longer
    than the model's context.
    """

    rows: Sequence[SourceRow]
    values: dict[Need, Any] = field(default_factory=dict)
    errors: dict[Need, list[str | None]] = field(default_factory=dict)
    truncated: dict[Need, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class MetricOutput:
    """What :meth:`Metric.compute` returns: one array/list of length N per declared column, and per-row reasons
    (None where fine) for rows this metric could not value. A reason becomes the row's ``error`` only when the
    row has none yet; the row's other values are kept."""

    columns: dict[str, Any]
    errors: list[str | None] | None = None


class Metric:
    """Base class of every metric. Subclasses set the class attributes and implement :meth:`columns`,
    :meth:`needs` and :meth:`compute`.

    Options come from ``--metric NAME:KEY=VALUE,…`` (strings) or keyword arguments; :attr:`options` lists the
    accepted keys with their help text, and unknown keys are refused. Those that name a model, a processor or a
    weight file are declared in :attr:`model_options` and parsed by the encoders registry's one grammar.
    """

    #: the name users type (``--metric NAME``)
    name: ClassVar[str] = ""
    #: one line for ``clipgauge metrics``
    summary: ClassVar[str] = ""
    #: option name → help text
    options: ClassVar[dict[str, str]] = {}
    #: options that take the run's value (``--model``, ``--scale``) when not given; a metric with a backbone of
    #: its own (an aesthetic head's CLIP, PickScore) sets this to ``()`` so ``--model`` does not move it
    inherits: ClassVar[tuple[str, ...]] = ("model", "scale")
    #: options that name a model, a processor or a weight file, and what each takes (``ANY_MODEL``, ``TRANSFORMERS``,
    #: ``WEIGHT_FILE`` of :mod:`clipgauge.encoders.registry`): parsed, when given, by the one grammar ``--model`` has
    model_options: ClassVar[dict[str, tuple[str, ...] | None]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise UsageError(f"metric '{self.name}' has no option {', '.join(unknown)} (options: {known})")
        self.config: dict[str, Any] = dict(options)
        #: the given model options, parsed (one-line ModelLoadError naming ``NAME:OPTION=VALUE`` when refused)
        self.model_specs: dict[str, ModelSpec] = {
            key: model_specs.parse_model_option(str(options[key]), f"{self.name}:{key}", takes)
            for key, takes in self.model_options.items() if options.get(key) not in (None, "")}

    # ----------------------------------------------------------------- declarations
    def needs(self) -> list[Need]:
        """The shared inputs :meth:`compute` reads."""
        return []

    def columns(self) -> list[Column]:
        """The columns this metric adds, in order."""
        raise NotImplementedError

    def primary(self) -> Column | None:
        """The column that is this metric's score, with its direction (``higher_is_better``): what the report,
        ``compare``, ``select`` and ``filter`` rank by when asked for this metric. By default the first float
        column the summary describes that has a direction; None for a metric without one (flags, languages)."""
        return next((c for c in self.columns() if c.type == "float64" and c.summarize
                     and c.higher_is_better is not None), None)

    def declarations(self) -> list[dict[str, Any]]:
        """Every column's declaration (:meth:`Column.describe`, run columns last), the :meth:`primary` one marked
        ``"primary": true``: what a run's summary writes, so that its readers ask the metric, not a name."""
        primary = self.primary()
        return [{**c.describe(), **({"primary": True} if primary is not None and c.name == primary.name else {})}
                for c in (*self.columns(), *self.run_columns())]

    def run_columns(self) -> list[Column]:
        """Columns computed over the whole run once every row is scored (e.g. a probability within the group
        of rows of one prompt): null while the run goes, filled in by :meth:`finalize`."""
        return []

    def finalize(self, values: dict[str, np.ndarray], groups: Sequence[Any]) -> dict[str, np.ndarray]:
        """The :meth:`run_columns` of every row, in input order, from this metric's columns over all rows
        (*values*, as :meth:`summarize` gets them) and each row's group key (its prompt; None where missing)."""
        return {}

    def models(self) -> list[str]:
        """The model specs whose embeddings it needs (derived from :meth:`needs`)."""
        return list(dict.fromkeys(n.model for n in self.needs() if n.model is not None))

    # ----------------------------------------------------------------- life cycle
    def setup(self, context: Any) -> None:
        """Called once per process before scoring (load a model of its own here); *context* is the
        :class:`~clipgauge.pipeline.plan.ScoringPlan` (``context.embedder(spec)`` gives a shared model)."""

    def compute(self, batch: MetricBatch) -> MetricOutput:
        """Per-row values of every column for *batch*."""
        raise NotImplementedError

    # ----------------------------------------------------------------- summary and records
    def summarize(self, values: dict[str, np.ndarray], confidence: float = 0.95) -> dict[str, Any]:
        """Summary entries (merged into the run summary) from this metric's columns over all rows
        (float columns as float64 with NaN for missing values, bool columns as bool)."""
        from ..stats.summary import bootstrap_mean_cis, describe

        cols = [c for c in self.columns() if c.summarize and c.type == "float64"]
        cis = bootstrap_mean_cis([values[c.name] for c in cols], confidence=confidence)  # resampled once
        return {c.name: describe(values[c.name], confidence=confidence, ci=ci) for c, ci in zip(cols, cis)}

    def provenance(self) -> dict[str, Any]:
        """What a reader needs to reproduce this metric's numbers (definitions, versions, files)."""
        return {"metric": self.name, "options": dict(self.config),
                "columns": [c.describe() for c in self.columns()]}

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a run to be resumed with this metric (its name and options by default)."""
        return {"metric": self.name, **{k: str(v) for k, v in sorted(self.config.items())}}


def unit_vectors_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (N, D) float32 arrays of unit vectors: the cosines, float64 in [-1, 1].

    Each row is one ``np.dot`` of float32 vectors (the arithmetic the scorer always used, so scores stay
    bit-identical); a NaN row gives NaN.
    """
    out = np.full(len(a), np.nan, dtype=np.float64)
    for i in range(len(a)):
        out[i] = float(np.dot(a[i], b[i]))
    return out

"""``clipgauge.classify``: zero-shot classification of every image of an input, as one scoring run.

It is :func:`clipgauge.score` with the ``zeroshot`` metric (:mod:`clipgauge.metrics.zeroshot`), so it reads every
input ``score`` reads (image folders without prompts, manifests, WebDataset, Parquet, HF datasets), writes a results
file or folder, resumes, and runs on Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_MODEL
from ..errors import UsageError
from ..metrics.zeroshot import ZeroShot, parse_labels, parse_templates
from ..pipeline.plan import ScoreOptions
from ..runs import ScoreResult, score
from .textfile import read_lines


def read_labels(path: str | Path) -> list[str]:
    """Labels from a text file, one per line (blank lines and lines starting with ``#`` skipped).
    :class:`UsageError` when the file cannot be read or holds no label."""
    return read_lines(path, "labels", comments=True)


def classify(
    input_spec: str | Path,
    labels: Sequence[str] | str,
    *,
    templates: Sequence[str] | str | None = None,
    truth: str | None = None,
    out: str | Path | None = None,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    options: ScoreOptions | None = None,
    **run: Any,
) -> ScoreResult:
    """Classify every image of *input_spec* zero-shot into *labels* (a list, or comma-separated text).

    *templates*: prompt templates with ``{}`` for the label (``"a photo of a {}."``), several averaged as the
    CLIP paper's normalised ensemble; ``"imagenet"`` = its 80 ImageNet templates; default the label as written.
    *truth*: a column holding each row's true label; adds ``true_label``, ``true_rank``, ``true_probability``
    and ``correct``, and the summary's ``classification`` gets top-1/top-5 accuracy, mean per-class recall and
    the confusion table (all fractions in [0, 1]).

    Each row gets ``label`` (top-1), ``probability`` (softmax over labels of the model's ``logit_scale.exp()`` ×
    cosine, in [0, 1]) and ``top_labels`` (JSON list of the *top_k* most probable labels). *options* sets device,
    batch size, precision… (its metrics are replaced); *run* goes to :func:`clipgauge.score` (``engine``,
    ``shard_size``, ``resume``, ``image_column``, ``ray``, ``progress``). Returns its :class:`ScoreResult`; the
    rows are in *out* (a results file or folder) when given. :class:`UsageError` for bad labels, templates, a
    missing truth column or an input without images.
    """
    label_list = parse_labels(labels)
    template_list = parse_templates(templates)
    if truth is not None:
        _check_truth_column(input_spec, truth, run.get("image_column"))
    metric = (ZeroShot, {"labels": label_list, "templates": template_list, "truth": truth, "top_k": top_k,
                         "model": model})
    opts = (options or ScoreOptions()).with_(metrics=[metric], model=model)
    return score(input_spec, out, opts, **run)


def _check_truth_column(input_spec: str | Path, truth: str, image_column: str | None) -> None:
    from ..sources.detect import open_source

    source = open_source(input_spec, image_column=image_column, require_prompt=False)
    names = list(source.schema().names)
    if truth not in names:
        raise UsageError(f"the input has no ground-truth column '{truth}' (columns: {', '.join(names) or 'none'})",
                         cli=f"the input has no ground-truth column '{truth}' for --truth "
                             f"(columns: {', '.join(names) or 'none'})")

"""Distribution scalars of the tracker: ``clip/cmmd`` and ``clip/vendi`` of each evaluation's images.

Given a reference-statistics file (``clipgauge distance --save-reference REF.npz IMAGES``), every evaluation
also writes

* ``PREFIX/cmmd``: CMMD (squared MMD, Gaussian RBF kernel σ = 10, × 1000, the reference implementation's estimator
  with the diagonal terms; :func:`clipgauge.distribution.mmd.cmmd`) between the evaluation's image embeddings and
  the reference's stored embeddings. ≥ 0; lower is closer to the reference data: a fine-tune that drifts from the
  data shows as a rising curve.
* ``PREFIX/vendi``: the Vendi score (:func:`clipgauge.distribution.vendi.vendi_score`, cosine kernel) of the
  evaluation's images, in [1, n]: the effective number of distinct images. A fine-tune that collapses to one image
  per prompt shows as a falling curve.

The embeddings are those the CLIP score was computed from (the scoring step keeps them; nothing is encoded twice),
so the tracker's model must be the reference's: a file made with another model is refused with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError


class DistributionTracking:
    """``PREFIX/cmmd`` and ``PREFIX/vendi`` of image embeddings against the reference statistics at *path*.

    The file is read when this is made (a missing or unreadable file is one :class:`UsageError`); *model_spec*
    (the tracker's model) must be the one the reference was computed with when the file records it.
    """

    def __init__(self, path: str | Path, *, model_spec: str | None = None, prefix: str = "clip") -> None:
        from ..distribution.reference import load_reference

        self.path = Path(path)
        self.prefix = prefix
        self.reference = load_reference(self.path)
        theirs = reference_model(self.reference)
        if model_spec is not None and theirs is not None and _norm(theirs) != _norm(model_spec):
            raise UsageError(f"reference statistics {self.path} were computed with model '{theirs}', the tracker "
                             f"scores with '{model_spec}': use the same model, or make the file with this one")
        self.reference_embeddings = np.asarray(self.reference.embeddings, dtype=np.float32)

    def stats(self, embeddings: np.ndarray | None) -> dict[str, float]:
        """``{PREFIX/cmmd, PREFIX/vendi}`` of the (N, D) L2-normalised image embeddings (NaN rows, images that could
        not be scored, left out); both NaN when no image has an embedding."""
        nan = float("nan")
        x = np.zeros((0, 0), dtype=np.float32) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
        x = x[~np.isnan(x).any(axis=1)] if x.size else x
        if len(x) == 0:
            return {f"{self.prefix}/cmmd": nan, f"{self.prefix}/vendi": nan}
        if x.shape[1] != self.reference_embeddings.shape[1]:
            raise UsageError(f"the tracker's embeddings have {x.shape[1]} dimensions, those of {self.path} "
                             f"{self.reference_embeddings.shape[1]}: the reference was made with another model")
        from ..distribution.mmd import cmmd
        from ..distribution.vendi import vendi_score

        return {f"{self.prefix}/cmmd": float(cmmd(x, self.reference_embeddings)),
                f"{self.prefix}/vendi": float(vendi_score(x))}


def reference_model(reference: Any) -> str | None:
    """The model spec a reference-statistics object records (None when it records none)."""
    for name in ("model_spec", "model", "spec"):
        value = getattr(reference, name, None)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            spec = value.get("spec") or value.get("model_spec")
            if isinstance(spec, str) and spec:
                return spec
    return None


def _norm(spec: str) -> str:
    return spec.strip().removeprefix("hf:").rstrip("/")

"""Reference-based scores.

* **CLIP-I**: cosine of the generated image's embedding with a reference image's embedding, in [-1, 1]
  (used to judge subject fidelity after subject fine-tuning, e.g. DreamBooth).
* **RefCLIP-S** (Hessel et al. 2021, eq. 2): the harmonic mean of CLIP-S = 2.5 × max(cos(image, prompt), 0)
  and the best reference cosine max(max_r cos(prompt, r), 0), where r ranges over reference captions and
  both cosines are of CLIP text embeddings — exactly as the CLIPScore paper's code computes it. In [0, 2.5].
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

CLIP_S_WEIGHT = 2.5


def refclip_s(cosine: np.ndarray, best_reference_cosine: np.ndarray) -> np.ndarray:
    """RefCLIP-S per row from image–prompt cosines and best prompt–reference cosines (NaN propagates)."""
    c = CLIP_S_WEIGHT * np.maximum(np.asarray(cosine, dtype=np.float64), 0.0)
    r = np.maximum(np.asarray(best_reference_cosine, dtype=np.float64), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(c + r > 0, 2.0 * c * r / (c + r), 0.0)
    return np.where(np.isnan(c) | np.isnan(r), np.nan, h)


def parse_reference_texts(value: Any) -> list[str]:
    """Reference captions from a cell: a list (JSONL/Parquet), a JSON array string, or one caption.

    Raises ``ValueError`` with a short reason when there is no usable caption.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("reference captions are not a valid JSON array") from None
        else:
            value = [value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise ValueError("no reference captions")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("reference captions must be text or a list of texts")
    if not value:
        raise ValueError("no reference captions")
    return list(value)

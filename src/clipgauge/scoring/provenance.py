"""Provenance of a scorer: what a reader needs to reproduce a number (model, weights, preprocessing, versions)."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..provenance import library_versions
from .gpu_decode import decode_provenance
from .precision import PRECISION_EFFECTS
from .scales import SCALE_DEFINITIONS

if TYPE_CHECKING:
    from .scorer import Embedder


def _attention(encoder: Any) -> str | None:
    """The attention implementation a transformers model runs with (``sdpa``, ``eager``, …)."""
    config = getattr(getattr(encoder, "module", None), "config", None)
    return getattr(config, "_attn_implementation", None)


def scorer_provenance(scorer: Embedder) -> dict[str, Any]:
    enc = scorer.encoder
    return {
        "clipgauge_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "spec": enc.spec,
            "family": enc.family,
            "weights_sha256": enc.weights_sha256(),
            "weights_hash_definition": "sha256 over the state dict: name|dtype|shape|bytes, sorted by name",
            "context_length": enc.context_length,
            "attention": _attention(enc),
        },
        # decode="gpu" changes the pixels, so it is part of the preprocessing (absent: the exact decode)
        "preprocessing": {**enc.preprocessing(), "fast_decode": scorer.fast_decode,
                          **({"decode_path": scorer.decode} if scorer.decode != "cpu" else {})},
        "decode": decode_provenance(scorer.tensor_decoder, scorer.device),
        # what is refused before decoding (an error row each): pixels (width x height) and bytes of an image
        "image_limits": {"max_pixels": scorer.max_image_pixels, "max_bytes": scorer.max_image_bytes},
        "text": {
            "prompt_prefix": scorer.prompt_prefix,
            "truncation": f"model tokenizer, max {enc.context_length} tokens, end-of-text token kept",
            **({"languages": scorer.language_tally.provenance()} if enc.needs_language else {}),
        },
        "precision": scorer.precision,
        "precision_effect": PRECISION_EFFECTS[scorer.precision],
        "device": str(scorer.device),
        "batch_size": scorer.batch_size,
        "embedding_cache": scorer.cache.stats() if scorer.cache is not None else None,
        "scales": SCALE_DEFINITIONS,
        "libraries": library_versions(),
        "platform": platform.platform(),
    }

"""The precisions a scorer can run in, and what each does to a score (no torch import here)."""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "fp16")

#: What each precision does to a score, as measured (``benchmarks/RESULTS.md``); written to every provenance.
PRECISION_EFFECTS = {
    "fp32": "exact: the reference encoders' cosine to within 1e-4 (tested); measured max |dcos| 8.4e-8 against "
            "torchmetrics on ViT-B/32 shapes",
    "bf16": "autocast bf16 vs fp32: measured max |dcos| 9.4e-4 on ViT-B/32 shapes (random weights) and 2.1e-3 "
            "(mean 4.9e-4; best-of-4 pick changed for 3 of 64 prompts) on the trained demo CLIP; "
            "benchmarks/RESULTS.md",
    "fp16": "autocast fp16 (GPU only): effect not yet measured (no GPU was available when it was built)",
}

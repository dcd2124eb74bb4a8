"""Group tokenised prompts into batches of similar token length, cut to their longest prompt.

A text tower's cost grows with the padded length of its batch, so prompts are sorted by token count
and a batch closes when adding the next, longer prompt would make more than a quarter of its tokens
padding (or it holds ``max_batch`` prompts). Padding columns past a batch's longest prompt are cut off;
padding never changes an embedding (it comes after the end-of-text token, which the causal mask and
the pooling look no further than), so neither does the grouping.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..encoders import Tokens

#: a batch may hold at most this share of padding tokens before a new one starts
MAX_PADDING = 0.25


def length_batches(tokens: Tokens, max_batch: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(row indices, model inputs)`` covering every row of *tokens* once."""
    mask = tokens.inputs.get("attention_mask")
    n = len(tokens.truncated)
    if mask is None:  # no mask: fixed-length inputs, nothing to gain from grouping
        for start in range(0, n, max_batch):
            idx = np.arange(start, min(n, start + max_batch))
            yield idx, {k: v[start : start + max_batch] for k, v in tokens.inputs.items()}
        return
    lengths = mask.sum(dim=1).numpy()
    order = np.argsort(lengths, kind="stable")
    group: list[int] = []
    real = 0
    for i in order:
        longest = int(lengths[i])  # sorted: the newcomer is the longest
        if group and (len(group) >= max_batch or (len(group) + 1) * longest > (1 + MAX_PADDING) * (real + longest)):
            yield _cut(tokens, np.array(group), lengths)
            group, real = [], 0
        group.append(int(i))
        real += longest
    if group:
        yield _cut(tokens, np.array(group), lengths)


def _cut(tokens: Tokens, idx: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    rows = torch.from_numpy(idx)
    inputs = {k: v[rows] for k, v in tokens.inputs.items()}
    width = int(lengths[idx].max())
    mask = inputs["attention_mask"]
    same_shape = all(v.dim() == 2 and v.shape == mask.shape for v in inputs.values())
    if same_shape and not bool(mask[:, width:].any()):  # right padding only: cut the all-padding columns
        inputs = {k: v[:, :width] for k, v in inputs.items()}
    return idx, inputs

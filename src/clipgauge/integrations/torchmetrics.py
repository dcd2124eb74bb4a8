"""A torchmetrics ``Metric`` computing CLIP score with clipgauge: per-sample scores kept, long prompts right.

``clipgauge.integrations.torchmetrics.CLIPScore`` is a drop-in for ``torchmetrics.multimodal.CLIPScore``:
``update(images, texts)`` (either order), ``compute()`` returns ``max(100 × mean cosine, 0)`` as torchmetrics
does. Differences, all deliberate:

* every per-sample score is kept (:meth:`CLIPScore.scores`, in torchmetrics' 100 × cosine scale), and
  gathered across processes under torch.distributed (list state, ``dist_reduce_fx="cat"``);
* prompts longer than the text context (77 tokens) are truncated by the model's tokenizer with the
  end-of-text token kept — the embedding is read at that token — and counted (:meth:`CLIPScore.n_truncated`);
* images are decoded and preprocessed exactly as ``clipgauge score`` does (original CLIP preprocessing):
  uint8 (or integer) tensors in 0..255, float tensors in [0, 1] — torchmetrics would treat a float tensor
  as 0..255 —, (N, C, H, W) batches or lists of (C, H, W) images, PIL images or paths;
* any clipgauge model spec works (``openai/clip-vit-large-patch14``, ``hf:DIR``, ``open_clip:…``,
  ``demo``), or a ready :class:`~clipgauge.Scorer`. The CLIP model follows the metric's device
  (``metric.to("cuda")``) at the next ``update``; it is not part of the metric's state dict.

The cosines are those of ``clipgauge score``: each batch goes through the same scoring step and ``clip`` metric
(:func:`clipgauge.pipeline.pairs.score_pairs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..encoders import DEFAULT_MODEL
from ..errors import RowError
from ..pipeline.pairs import Scorer, score_pairs
from ..scoring.scorer import Embedder
from ..scoring.settings import split_settings


class CLIPScore(Metric):
    """CLIP score (100 × cosine, clamped at 0 for the aggregate) with per-sample scores.

    Args:
        model_name_or_path: a clipgauge model spec or a :class:`~clipgauge.Scorer`.
        kwargs: the model's settings (``batch_size``, ``precision``, ``prompt_prefix`` …, the fields of
            :class:`~clipgauge.scoring.settings.ScorerSettings`; the model is loaded on CPU, then follows the
            metric's device); every other keyword goes to ``torchmetrics.Metric`` (``sync_on_compute``,
            ``dist_sync_on_step`` …).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

    def __init__(self, model_name_or_path: str | Embedder = DEFAULT_MODEL, **kwargs: Any) -> None:
        settings, kwargs = split_settings(kwargs)
        if "device" in settings:
            raise TypeError("CLIPScore takes no device: the model follows the metric's device (metric.to(...))")
        super().__init__(**kwargs)
        if isinstance(model_name_or_path, Embedder):
            self.scorer = model_name_or_path
        else:
            self.scorer = Scorer(model_name_or_path, **{**settings, "device": "cpu"})
        self.add_state("cosine", default=[], dist_reduce_fx="cat")
        self.add_state("truncated", default=[], dist_reduce_fx="cat")

    def update(self, source: Any, target: Any) -> None:
        """Add a batch: images and their texts, in either order (one text per image, or one text for all)."""
        # Bad input raises ValueError, as torchmetrics' CLIPScore does (this class is a drop-in for it).
        if _is_text(source):
            source, target = target, source
        if not _is_text(target):
            raise ValueError("CLIPScore.update needs images and texts (a string or a list of strings)")
        images = _image_list(source)
        texts = [target] * len(images) if isinstance(target, str) else list(target)
        if len(texts) != len(images):
            raise ValueError(f"expected the same number of images and texts, got {len(images)} and {len(texts)}")
        self._follow_device()
        try:
            pairs = score_pairs(self.scorer, images, texts, strict=True)
        except RowError as exc:
            raise ValueError(f"CLIPScore: {exc}") from None
        self.cosine.append(torch.as_tensor(pairs.cosine.astype(np.float32), device=self.device))
        self.truncated.append(torch.as_tensor(pairs.truncated, dtype=torch.bool, device=self.device))

    def compute(self) -> torch.Tensor:
        """``max(100 × mean cosine, 0)`` over every sample so far (as torchmetrics' ``CLIPScore``)."""
        cos = dim_zero_cat(self.cosine) if len(self.cosine) else torch.zeros(0, device=self.device)
        if cos.numel() == 0:
            return torch.tensor(float("nan"), device=self.device)
        return torch.clamp(100.0 * cos.double().mean(), min=0.0).float()

    def scores(self) -> torch.Tensor:
        """Every per-sample score so far (100 × cosine, unclamped), in update order, from all processes."""
        with self.sync_context(should_sync=self.sync_on_compute):
            return (100.0 * dim_zero_cat(self.cosine)) if len(self.cosine) else torch.zeros(0)

    def n_truncated(self) -> int:
        """How many samples' texts were longer than the model's context and were truncated."""
        with self.sync_context(should_sync=self.sync_on_compute):
            return int(dim_zero_cat(self.truncated).sum()) if len(self.truncated) else 0

    def _follow_device(self) -> None:
        device = self.device
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.scorer.to(device)


def _is_text(x: Any) -> bool:
    return isinstance(x, str) or (isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, str) for t in x))


def _image_list(images: Any) -> list[Any]:
    if isinstance(images, torch.Tensor):
        if not images.is_floating_point() and images.dtype != torch.uint8:
            if images.numel() and (int(images.min()) < 0 or int(images.max()) > 255):
                raise ValueError("integer image values must lie in 0..255")
            images = images.to(torch.uint8)
        if images.ndim == 4:
            return list(images)
        if images.ndim == 3:
            return [images]
        raise ValueError(f"expected images of shape (N, C, H, W) or (C, H, W), got {tuple(images.shape)}")
    if isinstance(images, (list, tuple)):
        return [_image_list(i)[0] if isinstance(i, torch.Tensor) and i.ndim == 3 else i for i in images]
    return [images]

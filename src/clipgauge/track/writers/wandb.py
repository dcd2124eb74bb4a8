"""Weights & Biases writer (optional dependency ``wandb``; offline mode works without an account).

Logs every scalar of an evaluation with ``run.log(..., step=step)`` — W&B requires steps that never go
back, so use the same step your loop logs its loss with — and, when ``images=True``, the best and worst
images as ``clip/best`` and ``clip/worst`` (``wandb.Image`` lists captioned ``score · prompt``).
Pass the run your loop already has (``run=wandb.run``), or let the writer start one
(``wandb.init(**init_kwargs)``; it is then finished by :meth:`close`).
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from ..result import TrackResult
from .base import Writer, missing_extra


class WandbWriter(Writer):
    """Write results to a W&B run.

    Args:
        run: an active ``wandb`` run to log into (never finished by this writer); default: ``wandb.run``
            if a run is active, else a new run started with ``wandb.init(**init_kwargs)``.
        images: also log the best and worst images.
        per_prompt: also log ``clip/prompt/NAME`` values.
        init_kwargs: passed to ``wandb.init`` when a run is started here (``project``, ``mode``, ``dir`` …).
    """

    def __init__(self, run: Any = None, *, images: bool = True, per_prompt: bool = True, **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError:
            raise UsageError(missing_extra("wandb", "wandb")) from None
        self._wandb = wandb
        self._owned = False
        if run is None and not init_kwargs:
            run = wandb.run
        if run is None:
            run = wandb.init(**init_kwargs)
            self._owned = True
        self.run = run
        self.wants_images = images
        self.per_prompt = per_prompt

    def write(self, result: TrackResult) -> None:
        prompt_key = f"{result.prefix}/prompt/"
        data: dict[str, Any] = {k: float(v) for k, v in result.metrics.items()
                                if self.per_prompt or not k.startswith(prompt_key)}
        if self.wants_images:
            for label, items in (("best", result.best), ("worst", result.worst)):
                pics = [self._wandb.Image(e.image, caption=f"{e.score:.4f} · {e.prompt}")
                        for e in items if e.image is not None]
                if pics:
                    data[f"{result.prefix}/{label}"] = pics
        self.run.log(data, step=result.step)

    def close(self) -> None:
        if self._owned:
            self.run.finish()

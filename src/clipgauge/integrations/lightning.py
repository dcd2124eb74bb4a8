"""A PyTorch Lightning callback that tracks CLIP scores of generated validation images during ``fit``.

::

    from clipgauge.integrations.lightning import CLIPTrackerCallback
    tracker = CLIPTracker("openai/clip-vit-base-patch32", prompts="default", alerts=["drop:0.05!"])
    trainer = Trainer(callbacks=[CLIPTrackerCallback(tracker, generate=lambda prompts, module: module.sample(prompts),
                                                     every_n_steps=500)])

Every ``every_n_steps`` optimizer steps (``trainer.global_step``) the callback puts the LightningModule in
eval mode, calls ``generate(prompts)`` — or ``generate(prompts, module)`` — under ``torch.no_grad`` with a
fixed seed, logs the images with the tracker, and sends the tracker's metrics to the trainer's loggers, so
``clip/mean`` appears next to the loss. When an alert made with ``stop=True`` fires, it sets
``trainer.should_stop``. Works with ``lightning`` (``lightning.pytorch``) or the older ``pytorch_lightning``.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..track.result import TrackResult
from ..track.tracker import CLIPTracker
from .loops import Generate, evaluate

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - depends on the environment
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        from ..errors import UsageError

        raise UsageError("the Lightning callback needs lightning: pip install 'clipgauge[lightning]'") from None


class CLIPTrackerCallback(Callback):
    """Evaluate prompt adherence every N training steps.

    Args:
        tracker: the :class:`~clipgauge.track.CLIPTracker` to log with.
        generate: ``generate(prompts) -> images`` or ``generate(prompts, module) -> images``.
        every_n_steps: evaluate when ``trainer.global_step`` is a positive multiple of this.
        eval_at_start: also evaluate at the start of training (step 0, the baseline); default True.
        log_to_trainer: also send the metrics to ``trainer.loggers`` (rank 0), next to the loss.
        stop_on_alert: set ``trainer.should_stop`` when the tracker asks to stop.
        seed: the generation seed (see :func:`clipgauge.integrations.loops.evaluate`).
    """

    def __init__(self, tracker: CLIPTracker, generate: Generate, every_n_steps: int = 500, *,
                 eval_at_start: bool = True, log_to_trainer: bool = True, stop_on_alert: bool = True,
                 seed: int | None = 0) -> None:
        if every_n_steps < 1:
            raise UsageError("every_n_steps must be >= 1")
        self.tracker = tracker
        self.generate = generate
        self.every_n_steps = int(every_n_steps)
        self.eval_at_start = eval_at_start
        self.log_to_trainer = log_to_trainer
        self.stop_on_alert = stop_on_alert
        self.seed = seed
        self.results: list[TrackResult] = []  # summaries only (thumbnails dropped), one per evaluation
        self._last_step: int | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.eval_at_start:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(trainer.global_step)
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.tracker.flush()

    def _evaluate(self, trainer: Any, pl_module: Any) -> TrackResult:
        step = int(trainer.global_step)
        self._last_step = step
        was_training = pl_module.training
        pl_module.eval()
        try:
            result = evaluate(self.tracker, step, self.generate, seed=self.seed, module=pl_module)
        finally:
            pl_module.train(was_training)
        if self.log_to_trainer and trainer.is_global_zero:
            for lg in trainer.loggers:
                lg.log_metrics(dict(result.metrics), step=step)
        if self.stop_on_alert and self.tracker.should_stop:
            trainer.should_stop = True
        self.results.append(TrackResult(step=result.step, metrics=dict(result.metrics), per_prompt={},
                                        scale=result.scale, prefix=result.prefix, alerts=list(result.alerts),
                                        wall_time=result.wall_time, seconds=result.seconds))
        return result

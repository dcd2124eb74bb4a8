"""Integrations of the tracker with training code.

* :mod:`clipgauge.integrations.loops` — :class:`~clipgauge.integrations.loops.TrackEvery` and
  :func:`~clipgauge.integrations.loops.evaluate` for hand-written loops (e.g. diffusers' training scripts);
* :mod:`clipgauge.integrations.lightning` — a PyTorch Lightning callback (needs ``lightning``);
* :mod:`clipgauge.integrations.torchmetrics` — a torchmetrics ``CLIPScore`` with per-sample scores
  (needs ``torchmetrics``).

Importing this package imports none of the optional dependencies.
"""

"""Alert rules on a tracked metric: notice early when a fine-tuning run goes wrong.

Rules (each watches ``metric``, default ``clip/mean``, in the tracker's scale):

* :class:`Floor` — the value is below ``threshold`` at or after step ``after_step``;
* :class:`DropFromBest` — the value is more than ``max_drop`` below the best value seen so far;
* :class:`NoImprovement` — ``patience`` evaluations in a row without beating the best by more than ``min_delta``.

Alerts are edge-triggered: a rule fires when its condition becomes true and again only after it has been
false in between (so a run stuck below a floor gives one warning, not one per evaluation). When a rule
fires, the :class:`AlertMonitor` logs a warning on the ``clipgauge.track`` logger, calls the user's
callback with the :class:`Alert`, and, for a rule made with ``stop=True``, sets ``should_stop``.
Evaluations whose metric is NaN (no image could be scored) are ignored by every rule.

Rules can also be written as strings (for configs and the command line): ``floor:0.25@1000``
(floor 0.25 from step 1000), ``drop:0.05``, ``plateau:5`` or ``plateau:5:0.001``; append ``!`` to make it
stop the run (``drop:0.05!``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

logger = logging.getLogger("clipgauge.track")


@dataclass(frozen=True)
class Alert:
    """A rule that fired: which, at what step, the metric's value then, and whether it asks to stop."""

    rule: str
    step: int
    metric: str
    value: float
    message: str
    stop: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "step": self.step, "metric": self.metric, "value": self.value,
                "message": self.message, "stop": self.stop}


class Rule:
    """Base of alert rules: :meth:`condition` returns a message while the rule's condition holds, else None."""

    def __init__(self, *, metric: str = "clip/mean", stop: bool = False) -> None:
        self.metric = metric
        self.stop = stop
        self._active = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def condition(self, step: int, value: float) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, step: int, value: float) -> Alert | None:
        """Update the rule with a new value; an :class:`Alert` when the condition has just become true."""
        message = self.condition(step, value)
        fired = message is not None and not self._active
        self._active = message is not None
        if not fired:
            return None
        return Alert(self.name, step, self.metric, value, message, self.stop)


class Floor(Rule):
    """Fires when ``metric < threshold`` at a step ``>= after_step``."""

    def __init__(self, threshold: float, after_step: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.threshold = float(threshold)
        self.after_step = int(after_step)

    def condition(self, step: int, value: float) -> str | None:
        if step >= self.after_step and value < self.threshold:
            return (f"{self.metric} = {value:.4f} is below the floor {self.threshold:g} "
                    f"(step {step} >= {self.after_step})")
        return None


class DropFromBest(Rule):
    """Fires when ``metric`` is more than ``max_drop`` below the best value seen so far."""

    def __init__(self, max_drop: float, **kw: Any) -> None:
        super().__init__(**kw)
        if max_drop < 0:
            raise UsageError("max_drop must be >= 0")
        self.max_drop = float(max_drop)
        self.best: float | None = None
        self.best_step: int | None = None

    def condition(self, step: int, value: float) -> str | None:
        if self.best is None or value > self.best:
            self.best, self.best_step = value, step
        if self.best - value > self.max_drop:
            return (f"{self.metric} = {value:.4f} dropped {self.best - value:.4f} below its best "
                    f"{self.best:.4f} (step {self.best_step}); allowed drop {self.max_drop:g}")
        return None


class NoImprovement(Rule):
    """Fires after ``patience`` evaluations in a row that do not beat the best by more than ``min_delta``."""

    def __init__(self, patience: int, min_delta: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        if patience < 1:
            raise UsageError("patience must be >= 1")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.since = 0

    def condition(self, step: int, value: float) -> str | None:
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.since = value, 0
            return None
        self.since += 1
        if self.since >= self.patience:
            return (f"{self.metric} has not improved on {self.best:.4f} for {self.since} evaluations "
                    f"(patience {self.patience})")
        return None


def parse_rule(spec: str) -> Rule:
    """A rule from a string: ``floor:T[@STEP]``, ``drop:D``, ``plateau:K[:MIN_DELTA]``; ``!`` at the end stops."""
    text = spec.strip()
    stop = text.endswith("!")
    text = text.rstrip("!")
    kind, _, rest = text.partition(":")
    try:
        if kind == "floor":
            value, _, after = rest.partition("@")
            return Floor(float(value), int(after or 0), stop=stop)
        if kind == "drop":
            return DropFromBest(float(rest), stop=stop)
        if kind in ("plateau", "patience"):
            k, _, delta = rest.partition(":")
            return NoImprovement(int(k), float(delta or 0.0), stop=stop)
    except (ValueError, UsageError):  # not a number, or out of range
        pass
    raise UsageError(f"bad alert rule '{spec}': use floor:VALUE[@STEP], drop:DELTA or plateau:K[:MIN_DELTA] "
                     "(append ! to stop the run)")


class AlertMonitor:
    """Applies rules to each evaluation's metrics, logs and reports what fires, and remembers a stop request."""

    def __init__(self, rules: Iterable[Rule | str] = (), on_alert: Callable[[Alert], Any] | None = None) -> None:
        self.rules: list[Rule] = [parse_rule(r) if isinstance(r, str) else r for r in rules]
        self.on_alert = on_alert
        self.should_stop = False
        self.fired: list[Alert] = []

    def update(self, step: int, metrics: dict[str, float], *, log: bool = True) -> list[Alert]:
        """Check every rule against *metrics* at *step*; returns the alerts that fired now.

        *log*: write the warning (the tracker passes False on ranks other than 0; the callback and the stop
        request happen on every rank, so that every rank can act on them alike)."""
        out: list[Alert] = []
        for rule in self.rules:
            value = metrics.get(rule.metric)
            if value is None or math.isnan(value):
                continue
            alert = rule.check(step, float(value))
            if alert is None:
                continue
            out.append(alert)
            if log:
                logger.warning("clipgauge alert at step %d: %s%s", step, alert.message,
                               " — requesting early stop" if alert.stop else "")
            if alert.stop:
                self.should_stop = True
            if self.on_alert is not None:
                self.on_alert(alert)
        self.fired.extend(out)
        del self.fired[:-100]  # keep memory bounded on very long runs
        return out


def as_rules(rules: Sequence[Rule | str] | Rule | str | None) -> list[Rule | str]:
    """Normalise the ``alerts=`` argument of the tracker to a list."""
    if rules is None:
        return []
    if isinstance(rules, (Rule, str)):
        return [rules]
    return list(rules)

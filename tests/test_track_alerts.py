"""Alert rules: floor after a step, drop from the best, no improvement; warnings, callbacks, early stop."""

from __future__ import annotations

import logging

import pytest

from clipgauge.errors import UsageError
from clipgauge.track import AlertMonitor, DropFromBest, Floor, NoImprovement, parse_rule


def _run(monitor: AlertMonitor, values: list[float], every: int = 100) -> list[tuple[str, int]]:
    fired = []
    for i, v in enumerate(values):
        fired += [(a.rule, a.step) for a in monitor.update(i * every, {"clip/mean": v})]
    return fired


def test_floor_only_after_its_step_and_edge_triggered():
    monitor = AlertMonitor([Floor(0.25, after_step=200)])
    # below the floor at step 0 and 100 is fine (warm-up); fires at 200, not again at 300, re-arms at 400
    assert _run(monitor, [0.1, 0.1, 0.2, 0.2, 0.3, 0.2]) == [("Floor", 200), ("Floor", 500)]


def test_drop_from_best():
    monitor = AlertMonitor([DropFromBest(0.05)])
    assert _run(monitor, [0.20, 0.26, 0.22, 0.20, 0.19, 0.27, 0.21]) == [("DropFromBest", 300), ("DropFromBest", 600)]
    rule = monitor.rules[0]
    assert rule.best == pytest.approx(0.27) and rule.best_step == 500


def test_no_improvement_with_patience_and_min_delta():
    monitor = AlertMonitor([NoImprovement(patience=3, min_delta=0.01)])
    # 0.305 does not beat 0.30 by more than 0.01: the third such evaluation fires
    assert _run(monitor, [0.30, 0.305, 0.29, 0.30, 0.30, 0.40]) == [("NoImprovement", 300)]


def test_monitor_logs_calls_back_and_requests_stop(caplog):
    seen = []
    monitor = AlertMonitor([Floor(0.5), DropFromBest(0.01, stop=True)], on_alert=seen.append)
    with caplog.at_level(logging.WARNING, logger="clipgauge.track"):
        _run(monitor, [0.6, 0.7])
        assert not monitor.should_stop
        _run(monitor, [float("nan")])  # an evaluation with nothing scored is ignored
        assert seen == []
        alerts = monitor.update(300, {"clip/mean": 0.3})
    assert [a.rule for a in alerts] == ["Floor", "DropFromBest"]
    assert seen == alerts and monitor.should_stop
    assert alerts[1].stop and not alerts[0].stop
    assert "below the floor" in caplog.text and "requesting early stop" in caplog.text
    assert alerts[1].to_dict()["value"] == pytest.approx(0.3)


def test_rules_on_other_metrics():
    monitor = AlertMonitor([Floor(0.1, metric="clip/min")])
    assert [a.metric for a in monitor.update(0, {"clip/mean": 0.3, "clip/min": 0.05})] == ["clip/min"]


def test_parse_rule():
    f = parse_rule("floor:0.25@1000")
    assert isinstance(f, Floor) and f.threshold == 0.25 and f.after_step == 1000 and not f.stop
    d = parse_rule("drop:0.05!")
    assert isinstance(d, DropFromBest) and d.max_drop == 0.05 and d.stop
    p = parse_rule("plateau:5:0.001")
    assert isinstance(p, NoImprovement) and p.patience == 5 and p.min_delta == 0.001
    for bad in ("floor", "drop:x", "plateau:0", "ceiling:1"):
        with pytest.raises(UsageError, match="bad alert rule"):
            parse_rule(bad)

"""Metrics: every score clipgauge computes is a :class:`Metric` on one seam (see :mod:`.base`).

>>> from clipgauge.metrics import available_metrics
>>> available_metrics()[:3]
['clip', 'clip_i', 'refclip_s']
"""

from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot
from .registry import (
    ENTRY_POINT_GROUP,
    MetricSpec,
    available_metrics,
    describe_metrics,
    metric_class,
    parse_metric,
    register_metric,
    unregister_metric,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Column",
    "Metric",
    "MetricBatch",
    "MetricOutput",
    "MetricSpec",
    "Need",
    "available_metrics",
    "describe_metrics",
    "metric_class",
    "parse_metric",
    "register_metric",
    "unregister_metric",
    "unit_vectors_dot",
]

"""Metrics: every score clipgauge computes is a :class:`Metric` on one seam (see :mod:`.base`).

>>> from clipgauge.metrics import available_metrics
>>> available_metrics()[:3]
['clip', 'clip_i', 'refclip_s']
"""

from .base import Column, Metric, MetricBatch, MetricOutput, Need, unit_vectors_dot
from .needs import AFTER, IMAGES, ROWS, NeedKind, need_kind, need_kinds, register_need, unregister_need
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
    "AFTER",
    "ENTRY_POINT_GROUP",
    "IMAGES",
    "ROWS",
    "Column",
    "Metric",
    "MetricBatch",
    "MetricOutput",
    "MetricSpec",
    "Need",
    "NeedKind",
    "available_metrics",
    "describe_metrics",
    "metric_class",
    "need_kind",
    "need_kinds",
    "parse_metric",
    "register_metric",
    "register_need",
    "unregister_metric",
    "unregister_need",
    "unit_vectors_dot",
]

"""Typed reads of what the OTel SDK hands its exporters and metric readers, for assertions.

The SDK's types are wider than what a test knows it holds: ``attributes`` is ``Optional`` on every item, and a
metric's points are a union of the number and histogram kinds. These narrow them with a check, so a test that
meets something else fails saying so instead of with an AttributeError."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.util.types import Attributes, AttributeValue


class _HasAttributes(Protocol):
    @property
    def attributes(self) -> Attributes: ...


def attrs_of(item: _HasAttributes) -> Mapping[str, AttributeValue]:
    """A span's, event's, link's or data point's attributes (the SDK gives finished items a mapping)."""
    assert item.attributes is not None, f"{item!r} has no attributes"
    return item.attributes


def metrics_in(data: MetricsData | None, name: str | None = None) -> Iterator[Metric]:
    """Every metric a reader collected (those named ``name``, if given)."""
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if name is None or metric.name == name:
                    yield metric


def number_points(metric: Metric) -> list[NumberDataPoint]:
    """A counter's, up-down counter's or gauge's points."""
    assert isinstance(metric.data, Sum | Gauge), f"{metric.name} is a {type(metric.data).__name__}"
    return [p for p in metric.data.data_points if isinstance(p, NumberDataPoint)]


def histogram_points(metric: Metric) -> list[HistogramDataPoint]:
    """An explicit-bucket histogram's points."""
    assert isinstance(metric.data, Histogram), f"{metric.name} is a {type(metric.data).__name__}"
    return list(metric.data.data_points)

"""Pre-aggregated ``operation.*`` metrics: why @track_performance does not call the SDK's instruments
per call.

An SDK synchronous measurement costs several microseconds in opentelemetry-sdk 1.45 (attribute validation,
hashing, exemplar filtering), more than the rest of the decorator's own work. The decorator therefore
aggregates each call into a small per-series histogram (one bisect, a few additions under a lock) and the
aggregates reach the SDK's export path in two standard ways:

* ``operation.calls`` and ``operation.errors`` are ObservableCounters whose callbacks read the
cumulative counts
  (the SDK converts temporality as for any observable instrument);
* ``operation.duration`` (an explicit-bucket histogram with trace exemplars, one per bucket: the last sampled
  span that landed there) is added to each export by ``OperationMetricsExporter``, a MetricExporter wrapper
  that honours its inner exporter's temporality preference (cumulative by default, delta on request).

Names, units and attributes are those of docs/conventions.md. The series count is bounded like the SDK's
cardinality limit; the excess goes to one ``otel.metric.overflow=true`` series.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from time import time_ns
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics import Histogram as SDKHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_metrics._internal.safety import internal_error

__all__ = ["OperationAggregator", "OperationMetricsExporter", "Series"]

DURATION_NAME = "operation.duration"
DURATION_UNIT = "s"
DURATION_DESCRIPTION = "Duration of operations wrapped by @track_performance."
OUTCOME = "operation.outcome"
# As the SDK's default cardinality limit (2000 series per metric), overflow into one marked series.
DEFAULT_SERIES_LIMIT = 2000
OVERFLOW_ATTRIBUTES: Mapping[str, Any] = {"otel.metric.overflow": True}


class Series:
    """One attribute set's cumulative histogram (what a call touches)."""

    __slots__ = (
        "attributes",
        "bounds",
        "buckets",
        "count",
        "error",
        "exemplars",
        "lock",
        "max",
        "min",
        "start_ns",
        "sum",
    )

    def __init__(self, attributes: Mapping[str, Any], bounds: tuple[float, ...], error: bool) -> None:
        self.attributes = dict(attributes)
        self.bounds = bounds
        self.error = error
        self.lock = threading.Lock()
        self.start_ns = time_ns()
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.buckets = [0] * (len(bounds) + 1)
        self.exemplars: list[tuple[float, int, int, int] | None] = [None] * (len(bounds) + 1)

    def add(self, value: float, trace_id: int, span_id: int) -> None:
        index = bisect_left(self.bounds, value)  # bucket i holds (bounds[i-1], bounds[i]]
        with self.lock:
            self.count += 1
            self.sum += value
            if value < self.min:
                self.min = value
            if value > self.max:
                self.max = value
            self.buckets[index] += 1
            if trace_id:
                self.exemplars[index] = (value, time_ns(), trace_id, span_id)

    def snapshot(
        self,
    ) -> tuple[int, float, float, float, list[int], list[tuple[float, int, int, int] | None]]:
        with self.lock:
            return self.count, self.sum, self.min, self.max, list(self.buckets), list(self.exemplars)


class OperationAggregator:
    """All series of one configure(): looked up by a hashable key the decorator builds once per
    attribute set."""

    def __init__(self, bounds: Iterable[float], limit: int = DEFAULT_SERIES_LIMIT) -> None:
        self.bounds = tuple(bounds)
        self.limit = limit
        self._lock = threading.Lock()
        self._series: dict[Any, Series] = {}
        self.created_ns = time_ns()

    def series(self, key: Any, attributes: Mapping[str, Any], error: bool) -> Series:
        found = self._series.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._series.get(key)
            if found is None:
                if len(self._series) >= self.limit:
                    key = ("__overflow__", error)
                    found = self._series.get(key)
                    attributes = {**OVERFLOW_ATTRIBUTES, OUTCOME: attributes.get(OUTCOME)}
                if found is None:
                    found = self._series[key] = Series(attributes, self.bounds, error)
        return found

    def all_series(self) -> list[Series]:
        with self._lock:
            return list(self._series.values())

    # ObservableCounter callbacks: cumulative counts (the SDK computes deltas if the exporter wants them).
    def observe_calls(self, options: CallbackOptions) -> Iterator[Observation]:
        for s in self.all_series():
            yield Observation(s.count, s.attributes)

    def observe_errors(self, options: CallbackOptions) -> Iterator[Observation]:
        for s in self.all_series():
            if s.error:
                yield Observation(s.count, {k: v for k, v in s.attributes.items() if k != OUTCOME})


def _exemplars(raw: list[tuple[float, int, int, int] | None], since_ns: int) -> list[Exemplar]:
    return [
        Exemplar({}, value, t, span_id=span_id, trace_id=trace_id)
        for item in raw
        if item is not None
        for value, t, trace_id, span_id in (item,)
        if t >= since_ns
    ]


class OperationMetricsExporter(MetricExporter):
    """Wraps a MetricExporter: adds the pre-aggregated ``operation.duration`` histogram to each export."""

    def __init__(self, inner: MetricExporter, aggregator: OperationAggregator, scope_name: str) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self._aggregator = aggregator
        self._scope = InstrumentationScope(scope_name)
        preferred = self._preferred_temporality or {}
        temporality = preferred.get(SDKHistogram, AggregationTemporality.CUMULATIVE)
        self._delta = temporality == AggregationTemporality.DELTA
        # delta: what was exported last time per series id, and when
        self._last: dict[int, tuple[int, float, list[int]]] = {}
        self._last_ns = aggregator.created_ns

    def _histogram(self) -> Metric | None:
        now = time_ns()
        points: list[HistogramDataPoint] = []
        for s in self._aggregator.all_series():
            count, total, lo, hi, buckets, exemplars = s.snapshot()
            if count == 0:
                continue
            start = s.start_ns
            since = 0
            if self._delta:
                prev = self._last.get(id(s))
                self._last[id(s)] = (count, total, buckets)
                start = max(s.start_ns, self._last_ns)
                since = self._last_ns
                if prev is not None:
                    count -= prev[0]
                    total -= prev[1]
                    buckets = [a - b for a, b in zip(buckets, prev[2], strict=True)]
                    if count == 0:
                        continue
                    # min/max are cumulative in this aggregation; over a delta window they are bounds only
            points.append(
                HistogramDataPoint(
                    attributes=s.attributes,
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    count=count,
                    sum=total,
                    bucket_counts=buckets,
                    explicit_bounds=list(s.bounds),
                    min=lo,
                    max=hi,
                    exemplars=_exemplars(exemplars, since),
                )
            )
        self._last_ns = now
        if not points:
            return None
        temporality = AggregationTemporality.DELTA if self._delta else AggregationTemporality.CUMULATIVE
        return Metric(
            name=DURATION_NAME,
            description=DURATION_DESCRIPTION,
            unit=DURATION_UNIT,
            data=Histogram(data_points=points, aggregation_temporality=temporality),
        )

    def _merge(self, data: MetricsData) -> MetricsData:
        metric = self._histogram()
        if metric is None or not data.resource_metrics:
            return data
        first = data.resource_metrics[0]
        scopes = list(first.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == self._scope.name:
                scopes[i] = replace(sm, metrics=[*sm.metrics, metric])
                break
        else:
            scopes.append(ScopeMetrics(scope=self._scope, metrics=[metric], schema_url=""))
        merged: ResourceMetrics = replace(first, scope_metrics=scopes)
        return MetricsData(resource_metrics=[merged, *data.resource_metrics[1:]])

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            metrics_data = self._merge(metrics_data)
        except Exception:
            internal_error("OperationMetricsExporter")
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)

"""Assert on your own telemetry: in-memory capture of spans and metrics through the full otel_metrics
pipeline.

    from otel_metrics.testing import capture

    def test_checkout():
        with capture() as tel:
            checkout()
            span = tel.span("Cart.checkout")
            assert span.attributes["operation.outcome"] == "success"
            assert tel.metric_points("operation.calls")

As a pytest fixture, put ``from otel_metrics.testing import otel_capture`` in your ``conftest.py``. Spans pass
through the same processors as in production (correlation, business, cost, redaction).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_metrics._internal.config import Telemetry, configure

__all__ = ["Capture", "InMemoryMetricExporter", "MetricPoint", "capture", "otel_capture"]


@dataclass(frozen=True)
class MetricPoint:
    name: str
    attributes: Mapping[str, Any]
    point: Any  # NumberDataPoint / HistogramDataPoint: .value, or .count/.sum/.bucket_counts

    @property
    def value(self) -> Any:
        return getattr(self.point, "value", None)


class InMemoryMetricExporter(MetricExporter):
    """Keeps the latest export (cumulative temporality: the latest export holds everything so far)."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: MetricsData | None = None

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.latest = metrics_data
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class Capture:
    """Captured telemetry of one ``capture()``; spans and metrics are flushed before they are read."""

    def __init__(self, telemetry: Telemetry, spans: InMemorySpanExporter, metrics: InMemoryMetricExporter) -> None:
        self.telemetry = telemetry
        self._spans = spans
        self._metrics = metrics

    def spans(self) -> list[ReadableSpan]:
        self.telemetry.force_flush()
        return list(self._spans.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError if none or several)."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {[s.name for s in self.spans()]}"
        return found[0]

    def metric_points(self, name: str) -> list[MetricPoint]:
        """Data points of metric ``name`` as of now (cumulative since ``capture()`` started)."""
        self.telemetry.force_flush()
        data = self._metrics.latest
        points: list[MetricPoint] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(MetricPoint(name, dict(p.attributes or {}), p) for p in metric.data.data_points)
        return points

    def clear(self) -> None:
        self._spans.clear()


def capture(service_name: str = "test", **configure_kwargs: Any) -> _CaptureContext:
    """Configure otel_metrics with in-memory exporters (arguments as for ``configure``) for a ``with``
    block."""
    return _CaptureContext(service_name, configure_kwargs)


class _CaptureContext:
    def __init__(self, service_name: str, kwargs: dict[str, Any]) -> None:
        self._service_name = service_name
        self._kwargs = kwargs
        self._capture: Capture | None = None

    def __enter__(self) -> Capture:
        spans = InMemorySpanExporter()
        metrics = InMemoryMetricExporter()
        telemetry = configure(self._service_name, _span_exporters=[spans], _metric_exporters=[metrics], **self._kwargs)
        self._capture = Capture(telemetry, spans, metrics)
        return self._capture

    def __exit__(self, *exc: object) -> None:
        if self._capture is not None:
            self._capture.telemetry.shutdown()


try:
    import pytest

    @pytest.fixture
    def otel_capture() -> Iterator[Capture]:
        """A ``Capture`` configured for the test, shut down after it."""
        with capture() as captured:
            yield captured

except ImportError:  # pragma: no cover - pytest is optional for users
    pass

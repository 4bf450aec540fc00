"""spanmetrics → prometheus exporter → real Prometheus: the queries Jaeger's Monitor and Grafana run work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.component import ComponentID, CreateSettings, Signal
from collector.connectors.spanmetrics import SpanMetricsConfig, SpanMetricsConnector
from collector.connectors.spanmetrics.config import ExemplarsConfig
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.prometheus import PrometheusExporterConfig
from collector.exporters.prometheus.exporter import PrometheusExporter
from tests.support.prom_helpers import LoopThread, needs_prometheus, prometheus_server

pytestmark = [pytest.mark.slow, needs_prometheus, pytest.mark.timeout(60)]
MS = 1_000_000


@pytest.fixture
def chain() -> Iterator[tuple[SpanMetricsConnector, PrometheusExporter, LoopThread]]:
    lt = LoopThread()
    prom = PrometheusExporter(
        CreateSettings(ComponentID("prometheus"), Signal.METRICS),
        PrometheusExporterConfig(endpoint="127.0.0.1:0", enable_open_metrics=True),
    )
    connector = SpanMetricsConnector(
        CreateSettings(ComponentID("spanmetrics"), Signal.TRACES),
        SpanMetricsConfig(exemplars=ExemplarsConfig(enabled=True)),
        prom,
    )
    lt.run(prom.start(StaticHost()))
    try:
        yield connector, prom, lt
    finally:
        lt.run(prom.shutdown())
        lt.stop()


def test_jaeger_monitor_queries(
    chain: tuple[SpanMetricsConnector, PrometheusExporter, LoopThread], tmp_path: Path
) -> None:
    connector, prom_exporter, lt = chain
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "frontend"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tp.get_tracer("app")
    t0 = time.time_ns() - 2_000 * MS  # recent: exemplars are queried by their timestamps
    # 90 server spans of 3 ms and 10 of 700 ms, 5 of which failed
    for i in range(100):
        span = tracer.start_span("GET /home", kind=SpanKind.SERVER, start_time=t0)
        if i >= 95:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=t0 + (3 if i < 90 else 700) * MS)
    lt.run(connector.consume(Signal.TRACES, encode_spans(exporter.get_finished_spans())))
    lt.run(connector.flush())

    with prometheus_server(tmp_path, prom_exporter.port, exemplars=True) as prom:
        calls = prom.wait(
            lambda: prom.query(
                'sum(traces_span_metrics_calls_total{service_name="frontend",span_kind="SPAN_KIND_SERVER"})'
            ),
            what="calls scraped",
        )
        assert float(calls[0]["value"][1]) == 100
        errors = prom.query(
            'sum(traces_span_metrics_calls_total{service_name="frontend",status_code="STATUS_CODE_ERROR"})'
        )
        assert float(errors[0]["value"][1]) == 5
        buckets = 'traces_span_metrics_duration_milliseconds_bucket{service_name="frontend"}'
        p50 = prom.query(f"histogram_quantile(0.5, sum by (le) ({buckets}))")
        p95 = prom.query(f"histogram_quantile(0.95, sum by (le) ({buckets}))")
        assert 2 < float(p50[0]["value"][1]) <= 4  # 3 ms lies in the (2, 4] ms bucket
        assert 400 < float(p95[0]["value"][1]) <= 800  # 700 ms lies in (400, 800]
        trace_ids = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()}
        exemplars = prom.wait(
            lambda: prom.exemplars("traces_span_metrics_duration_milliseconds_bucket"), what="exemplars"
        )
        seen = {e["labels"]["trace_id"] for series in exemplars for e in series["exemplars"]}
        assert seen and seen <= trace_ids

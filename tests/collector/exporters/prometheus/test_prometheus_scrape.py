"""A real Prometheus server scrapes the exporter; PromQL sees the expected counts, quantiles and exemplars."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from collector.component import ComponentID, CreateSettings, Signal
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.prometheus import PrometheusExporterConfig
from collector.exporters.prometheus.exporter import PrometheusExporter
from tests.support.prom_helpers import LoopThread, collect, needs_prometheus, prometheus_server

pytestmark = [pytest.mark.slow, needs_prometheus, pytest.mark.timeout(60)]


@pytest.fixture
def running_exporter() -> Iterator[tuple[PrometheusExporter, LoopThread]]:
    lt = LoopThread()
    exporter = PrometheusExporter(
        CreateSettings(ComponentID("prometheus"), Signal.METRICS),
        PrometheusExporterConfig(endpoint="127.0.0.1:0", enable_open_metrics=True),
    )
    lt.run(exporter.start(StaticHost()))
    try:
        yield exporter, lt
    finally:
        lt.run(exporter.shutdown())
        lt.stop()


def test_prometheus_scrapes_counts_quantiles_and_exemplars(
    running_exporter: tuple[PrometheusExporter, LoopThread], tmp_path: Path
) -> None:
    exporter, lt = running_exporter
    reader = InMemoryMetricReader()
    mp = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "checkout", "service.instance.id": "pod-7"}),
        views=[
            View(
                instrument_name="rpc.duration",
                aggregation=ExplicitBucketHistogramAggregation([0.1, 0.2, 0.5, 1]),
            )
        ],
    )
    meter = mp.get_meter("shop", "2.0")
    calls = meter.create_counter("rpc.calls", description="RPC calls.")
    duration = meter.create_histogram("rpc.duration", unit="s", description="RPC duration.")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        for i in range(100):
            calls.add(1, {"rpc.method": "Pay"})
            # 60 fast (0.05 s), 40 slow (0.4 s): p50 lands in the first bucket, p90 in (0.2, 0.5]
            duration.record(0.05 if i < 60 else 0.4, {"rpc.method": "Pay"})
    lt.run(exporter.consume(Signal.METRICS, collect(reader)))

    with prometheus_server(tmp_path, exporter.port, exemplars=True) as prom:
        prom.wait(
            lambda: [t for t in prom.targets() if t["health"] == "up"] or None,
            what="target up",
        )
        result = prom.wait(
            lambda: prom.query('rpc_calls_total{job="checkout",instance="pod-7",rpc_method="Pay"}'),
            what="rpc_calls_total scraped",
        )
        assert float(result[0]["value"][1]) == 100
        assert result[0]["metric"]["otel_scope_name"] == "shop"
        count = prom.query("sum(rpc_duration_seconds_count)")
        assert float(count[0]["value"][1]) == 100
        p50 = float(prom.query("histogram_quantile(0.5, sum by (le) (rpc_duration_seconds_bucket))")[0]["value"][1])
        p90 = float(prom.query("histogram_quantile(0.9, sum by (le) (rpc_duration_seconds_bucket))")[0]["value"][1])
        assert 0 < p50 <= 0.1
        assert 0.2 < p90 <= 0.5
        info = prom.query('target_info{job="checkout"}')
        assert info and info[0]["metric"]["telemetry_sdk_language"] == "python"
        # The scrape negotiated OpenMetrics, so exemplars with our trace id reached Prometheus.
        exemplars = prom.wait(lambda: prom.exemplars("rpc_duration_seconds_bucket"), what="exemplars")
        ids = {e["labels"].get("trace_id") for series in exemplars for e in series["exemplars"]}
        assert trace_id in ids

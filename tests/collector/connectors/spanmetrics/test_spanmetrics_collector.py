"""End to end in the real service: OTLP gRPC spans → otlp → spanmetrics → prometheus exporter → /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from collector.component import Signal
from collector.components import Registry
from collector.config.loader import parse_config
from collector.connectors import spanmetrics
from collector.exporters import prometheus
from collector.exporters.prometheus.exporter import PrometheusExporter
from collector.receivers import otlp
from collector.receivers.otlp.receiver import OTLPReceiver
from collector.service.service import Service
from tests.support.nodes import node_of

COMPONENTS = Registry(
    receivers={f.type: f for f in otlp.factories},
    processors={},
    exporters={f.type: f for f in prometheus.factories},
    connectors={f.type: f for f in spanmetrics.factories},
    extensions={},
)

CONFIG: dict[str, Any] = {
    "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
    "connectors": {"spanmetrics": {"metrics_flush_interval": "200ms"}},
    "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
    "service": {
        "telemetry": {"metrics": {"level": "none"}},
        "pipelines": {
            "traces": {"receivers": ["otlp"], "exporters": ["spanmetrics"]},
            "metrics": {"receivers": ["spanmetrics"], "exporters": ["prometheus"]},
        },
    },
}


@contextlib.contextmanager
def running(config: dict[str, Any]) -> Iterator[Service]:
    """The real service on its own event loop thread, shut down on exit."""
    service = Service(parse_config(config, COMPONENTS, include_builtin=False))
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def main() -> None:
        await service.start()
        started.set()
        await stop.wait()
        await service.shutdown(10.0)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(30), "collector did not start"
        yield service
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def test_spans_sent_over_otlp_show_up_as_span_metrics() -> None:
    with running(CONFIG) as service:
        receiver = node_of(service, "receiver", "otlp", OTLPReceiver)
        exporter = node_of(service, "exporter", "prometheus", PrometheusExporter, Signal.METRICS)
        tp = TracerProvider(resource=Resource.create({"service.name": "billing"}))
        span_exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True)
        tp.add_span_processor(SimpleSpanProcessor(span_exporter))
        tracer = tp.get_tracer("app")
        for _ in range(7):
            with tracer.start_as_current_span("POST /invoice", kind=SpanKind.SERVER):
                pass
        tp.shutdown()

        wanted = 'span_name="POST /invoice",status_code="STATUS_CODE_UNSET"} 7'
        deadline = time.monotonic() + 15
        text = ""
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                text = client.get(f"http://127.0.0.1:{exporter.port}/metrics").text
                if wanted in text:
                    break
                time.sleep(0.05)  # polling interval; the deadline bounds the wait
        calls = [line for line in text.splitlines() if line.startswith("traces_span_metrics_calls_total{")]
        assert any(wanted in line and 'service_name="billing"' in line for line in calls), text
        assert 'le="+Inf"} 7' in text


HEALTH = 'span_name="GET /health",status_code="STATUS_CODE_UNSET"} 1'


def overflow_calls(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("traces_span_metrics_calls_total{") and 'otel_metric_overflow="true"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_100000_distinct_span_names_leave_series_bounded_and_traffic_accepted() -> None:
    """A client that puts an id in every span name: one 6 MB OTLP/HTTP request of 100,000 distinct names."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    config = {
        **CONFIG,
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
    }
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "billing"
    spans = rs.scope_spans.add().spans
    now = time.time_ns()
    for i in range(100_000):
        spans.add(
            trace_id=(i + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            name=f"GET /invoice/{i}",
            kind=Span.SpanKind.SPAN_KIND_SERVER,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_000_000,
        )
    body = request.SerializeToString()
    assert len(body) > 5_000_000
    with running(config) as service:
        receiver = node_of(service, "receiver", "otlp", OTLPReceiver)
        exporter = node_of(service, "exporter", "prometheus", PrometheusExporter, Signal.METRICS)
        with httpx.Client(timeout=60) as client:
            reply = client.post(
                f"http://127.0.0.1:{receiver.http_port}/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert reply.status_code == 200
            # Normal traffic right after, from the official SDK exporter over gRPC: accepted and counted.
            tp = TracerProvider(resource=Resource.create({"service.name": "billing"}))
            span_exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.grpc_port}", insecure=True)
            tp.add_span_processor(SimpleSpanProcessor(span_exporter))
            with tp.get_tracer("app").start_as_current_span("GET /health", kind=SpanKind.SERVER):
                pass
            tp.shutdown()
            # Beyond 2,000 names per metric (and resource) every new one is counted in the overflow series.
            deadline = time.monotonic() + 60
            text = ""
            while time.monotonic() < deadline and not (overflow_calls(text) == 98_000 and HEALTH in text):
                time.sleep(0.1)  # polling interval; the deadline bounds the wait
                text = client.get(f"http://127.0.0.1:{exporter.port}/metrics").text
        assert overflow_calls(text) == 98_000 and HEALTH in text, text[-2000:]
        calls = [line for line in text.splitlines() if line.startswith("traces_span_metrics_calls_total{")]
        assert len(calls) == 2_001 + 1  # billing's 2,000 names and its overflow; the SDK resource's /health
        assert exporter.store.series_count() <= 2 * len(calls) + 2  # calls, durations, two target_info

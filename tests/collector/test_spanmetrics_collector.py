"""End to end in the real service: OTLP gRPC spans → otlp → spanmetrics → prometheus exporter → /metrics."""

from __future__ import annotations

import asyncio
import threading
import time
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
from collector.receivers import otlp
from collector.service.service import Service

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


def test_spans_sent_over_otlp_show_up_as_span_metrics() -> None:
    service = Service(parse_config(CONFIG, COMPONENTS, include_builtin=False))
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
        receiver = service.node("receiver", "otlp")
        exporter = service.node("exporter", "prometheus", Signal.METRICS)
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
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)

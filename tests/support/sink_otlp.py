"""OTLP requests made by the official OpenTelemetry SDK and its OTLP exporters' encoders (what a real client
sends)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def make_spans(build: Callable[[Any], None], service: str = "checkout", **resource: Any) -> list[ReadableSpan]:
    """Run ``build(tracer)`` under a fresh SDK provider; return the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests.sink", "1.2.3"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def traces_request(spans: Sequence[ReadableSpan]) -> Any:
    return encode_spans(spans)


__all__ = ["encode_logs", "encode_metrics", "make_spans", "traces_request"]

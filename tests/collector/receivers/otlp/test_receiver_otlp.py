"""The otlp receiver with the official OTel Python exporters as clients, over real gRPC and HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from grpc import Compression as GRPCCompression
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GRPCLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GRPCMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HTTPCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors.pipeline import Signal
from tests.collector.conftest import MakeConfig, RunCollector

RESOURCE = Resource.create({"service.name": "checkout"})


def make_spans(n: int = 3) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope", "1.2.3")
    with tracer.start_as_current_span("parent", attributes={"gen_ai.request.model": "gpt-4o"}):
        for i in range(n - 1):
            with tracer.start_as_current_span(f"child-{i}") as span:
                span.set_attribute("gen_ai.usage.input_tokens", 1000 + i)
    provider.shutdown()
    return list(memory.get_finished_spans())


def spans_of(requests: list[Any]) -> dict[str, Any]:
    return {
        span.name: (span, rs.resource, ss.scope)
        for request in requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def assert_spans_match(sent: list[ReadableSpan], requests: list[Any]) -> None:
    received = spans_of(requests)
    assert sorted(received) == sorted(s.name for s in sent)
    for s in sent:
        span, resource, scope = received[s.name]
        assert span.trace_id == s.context.trace_id.to_bytes(16, "big")
        assert span.span_id == s.context.span_id.to_bytes(8, "big")
        assert span.start_time_unix_nano == s.start_time
        attrs = {kv.key: kv.value for kv in span.attributes}
        for key, value in (s.attributes or {}).items():
            got = attrs[key]
            assert (got.int_value if isinstance(value, int) else got.string_value) == value
        assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "checkout"
        assert (scope.name, scope.version) == ("test.scope", "1.2.3")


def _exporters(collector: Any, transport: str) -> tuple[Any, Any, Any]:
    if transport == "grpc":
        return (
            # gzip on the span exporters: the receivers must decompress what the official clients send
            GRPCSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, compression=GRPCCompression.Gzip),
            GRPCMetricExporter(endpoint=collector.grpc_endpoint, insecure=True),
            GRPCLogExporter(endpoint=collector.grpc_endpoint, insecure=True),
        )
    return (
        HTTPSpanExporter(endpoint=f"{collector.http_url}/v1/traces", compression=HTTPCompression.Gzip),
        HTTPMetricExporter(endpoint=f"{collector.http_url}/v1/metrics"),
        HTTPLogExporter(endpoint=f"{collector.http_url}/v1/logs"),
    )


def make_metrics() -> Any:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("test.scope")
    meter.create_counter("operation.calls", unit="{call}").add(5, {"operation.name": "search"})
    meter.create_histogram("operation.duration", unit="s").record(0.25, {"operation.name": "search"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def make_logs() -> Any:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("test.scope")
    logger.emit(body="payment accepted", attributes={"tenant.id": "acme"})
    logger.emit(body="payment settled", attributes={"tenant.id": "acme"})
    provider.shutdown()
    return list(memory.get_finished_logs())


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_official_exporters_deliver_all_three_signals(
    run_collector: RunCollector, make_config: MakeConfig, transport: str
) -> None:
    collector = run_collector(make_config())
    span_exporter, metric_exporter, log_exporter = _exporters(collector, transport)
    try:
        sent = make_spans(3)
        assert span_exporter.export(sent) is SpanExportResult.SUCCESS
        assert_spans_match(sent, collector.exporter(signal=Signal.TRACES).wait_items(3))

        metric_exporter.export(make_metrics())
        requests = collector.exporter(signal=Signal.METRICS).wait_items(2)
        metrics = {
            m.name: m for r in requests for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
        assert metrics["operation.calls"].sum.data_points[0].as_int == 5
        assert metrics["operation.duration"].histogram.data_points[0].sum == pytest.approx(0.25)

        log_exporter.export(make_logs())
        requests = collector.exporter(signal=Signal.LOGS).wait_items(2)
        bodies = sorted(
            lr.body.string_value
            for r in requests
            for rl in r.resource_logs
            for sl in rl.scope_logs
            for lr in sl.log_records
        )
        assert bodies == ["payment accepted", "payment settled"]
    finally:
        span_exporter.shutdown()
        metric_exporter.shutdown()
        log_exporter.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_refusal_is_retried_by_the_official_exporter(
    run_collector: RunCollector, make_config: MakeConfig, transport: str
) -> None:
    # The exporter refuses twice (as memory_limiter would), then accepts: the client must retry and deliver.
    collector = run_collector(make_config(exporters={"collect": {"mode": "refuse", "times": 2, "retry_after": 0.05}}))
    span_exporter = _exporters(collector, transport)[0]
    try:
        sent = make_spans(2)
        assert span_exporter.export(sent) is SpanExportResult.SUCCESS
        exporter = collector.exporter()
        assert_spans_match(sent, exporter.wait_items(2))
        assert exporter.calls == 3
    finally:
        span_exporter.shutdown()


def test_one_receiver_many_signals_one_port(run_collector: RunCollector, make_config: MakeConfig) -> None:
    collector = run_collector(make_config())
    receiver = collector.receiver
    assert receiver.grpc_port > 0 and receiver.http_port > 0
    assert receiver is collector.service.node("receiver", "otlp", Signal.TRACES)

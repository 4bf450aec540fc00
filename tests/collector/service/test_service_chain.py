"""Two collectors chained as in production: SDK -> collector A (otlp receiver -> otlp exporter) -> collector B,
which stands in for Tempo; trace/span ids and attributes arrive byte for byte."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.components import Registry
from collector.exporters import otlp
from tests.collector.conftest import MakeConfig, RunCollector


@pytest.fixture
def with_otlp_exporter(test_components: Registry) -> Registry:
    return Registry(
        receivers=test_components.receivers,
        processors=test_components.processors,
        exporters={**test_components.exporters, **{f.type: f for f in otlp.factories}},
        connectors=test_components.connectors,
        extensions=test_components.extensions,
    )


def test_forwarding_through_a_second_collector(
    run_collector: RunCollector, make_config: MakeConfig, with_otlp_exporter: Registry
) -> None:
    tempo = run_collector(make_config(receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}))
    front = run_collector(
        make_config(
            receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            exporters={"otlp/tempo": {"endpoint": tempo.grpc_endpoint, "tls": {"insecure": True}}},
            processors={"tag": {"key": "collector.hop", "value": "front"}},
            pipelines={"traces": {"receivers": ["otlp"], "processors": ["tag"], "exporters": ["otlp/tempo"]}},
        ),
        with_otlp_exporter,
    )

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "node-like"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("chain")
    with (
        tracer.start_as_current_span("root", attributes={"gen_ai.request.model": "gpt-4o"}),
        tracer.start_as_current_span("child", attributes={"gen_ai.usage.input_tokens": 1234}),
    ):
        pass
    provider.shutdown()
    sent = {s.name: s for s in memory.get_finished_spans()}

    client = OTLPSpanExporter(endpoint=front.grpc_endpoint, insecure=True)
    try:
        assert client.export(list(sent.values())) is SpanExportResult.SUCCESS
    finally:
        client.shutdown()

    received = {
        span.name: (span, rs.resource)
        for request in tempo.exporter().wait_items(2)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    assert set(received) == {"root", "child"}
    for name, original in sent.items():
        span, resource = received[name]
        assert span.trace_id == original.context.trace_id.to_bytes(16, "big")
        assert span.span_id == original.context.span_id.to_bytes(8, "big")
        parent = original.parent.span_id.to_bytes(8, "big") if original.parent else b""
        assert span.parent_span_id == parent
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (original.start_time, original.end_time)
        attrs = {kv.key: kv.value for kv in span.attributes}
        assert attrs["collector.hop"].string_value == "front"  # went through A's processor
        for key, value in (original.attributes or {}).items():
            got = attrs[key]
            assert (got.int_value if isinstance(value, int) else got.string_value) == value
        assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "node-like"

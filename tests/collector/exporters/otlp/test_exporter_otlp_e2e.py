"""End to end: the official SDK exporter -> collector A -> otlp (gRPC) and otlp_http exporters, both with persistent
queues -> collectors B1 and B2 (standing in for Tempo/Jaeger). What arrives is byte-for-byte what A received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.component import Signal
from collector.components import Registry
from collector.exporters import otlp, otlphttp
from collector.extensions import file_storage
from tests.collector.conftest import MakeConfig, RunCollector


def spans_of(request: Any) -> dict[tuple[bytes, bytes], tuple[str, dict[str, Any]]]:
    out = {}
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {kv.key: kv.value.SerializeToString() for kv in span.attributes}
                out[(span.trace_id, span.span_id)] = (span.name, attrs)
    return out


def test_sdk_to_collector_to_collectors_byte_for_byte(
    run_collector: RunCollector, make_config: MakeConfig, test_components: Registry, tmp_path: Path
) -> None:
    components = Registry(
        receivers=test_components.receivers,
        processors=test_components.processors,
        exporters={**test_components.exporters, **{f.type: f for m in (otlp, otlphttp) for f in m.factories}},
        connectors=test_components.connectors,
        extensions={**test_components.extensions, **{f.type: f for f in file_storage.factories}},
    )
    fast_retry = {"initial_interval": "10ms", "max_interval": "50ms"}
    b1 = run_collector(make_config(pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect"]}}))
    b2 = run_collector(make_config(pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect"]}}))
    a = run_collector(
        make_config(
            exporters={
                "collect": None,
                "otlp_grpc/b1": {
                    "endpoint": b1.grpc_endpoint,
                    "tls": {"insecure": True},
                    "retry_on_failure": fast_retry,
                    "sending_queue": {"storage": "file_storage"},
                },
                "otlp_http/b2": {
                    "endpoint": b2.http_url,
                    "retry_on_failure": fast_retry,
                    "sending_queue": {"storage": "file_storage"},
                },
            },
            pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect", "otlp_grpc/b1", "otlp_http/b2"]}},
            extensions={"file_storage": {"directory": str(tmp_path / "queues")}},
            service_extensions=["file_storage"],
        ),
        components,
    )

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "node-checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=a.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("e2e")
    with (
        tracer.start_as_current_span("checkout", attributes={"gen_ai.request.model": "gpt-4o", "tokens": 42}),
        tracer.start_as_current_span("charge-card", attributes={"amount": 12.5, "ok": True}),
    ):
        pass
    provider.shutdown()

    at_a = a.exporter("collect", Signal.TRACES).wait_items(2)
    at_b1 = b1.exporter("collect", Signal.TRACES).wait_items(2)
    at_b2 = b2.exporter("collect", Signal.TRACES).wait_items(2)
    sent = sorted(r.SerializeToString() for r in at_a)
    assert sorted(r.SerializeToString() for r in at_b1) == sent
    assert sorted(r.SerializeToString() for r in at_b2) == sent

    expected = {
        (s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big")): s.name
        for s in memory.get_finished_spans()
    }
    for received in (at_b1, at_b2):
        got: dict[tuple[bytes, bytes], tuple[str, dict[str, Any]]] = {}
        for r in received:
            got.update(spans_of(r))
        assert {k: v[0] for k, v in got.items()} == expected
        assert set(got[next(k for k, v in expected.items() if v == "checkout")][1]) == {
            "gen_ai.request.model",
            "tokens",
        }

"""business: context API (local + W3C baggage), the SDK span processor and the collector face."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors._attributes import attributes_to_dict, set_attribute
from processors.business import (
    BUSINESS_KEYS,
    BusinessConfig,
    BusinessSpanProcessor,
    factories,
    get_business_attributes,
    set_business_attributes,
)
from processors.pipeline import ComponentID, CreateSettings, Request, Signal


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def test_business_keys_are_the_documented_names() -> None:
    assert BUSINESS_KEYS == (
        "tenant.id",
        "user.id",
        "session.id",
        "feature.name",
        "gen_ai.agent.name",
        "agent.role",
    )


def test_local_attributes_keep_types_and_stay_out_of_baggage() -> None:
    ctx = set_business_attributes({"tenant.id": "acme", "premium": True, "seats": 3, "score": 0.5})
    assert get_business_attributes(ctx) == {"tenant.id": "acme", "premium": True, "seats": 3, "score": 0.5}
    assert dict(baggage.get_all(ctx)) == {}
    assert get_business_attributes() == {}  # the current context is not changed


def test_propagated_attributes_cross_a_process_boundary_as_baggage() -> None:
    ctx = set_business_attributes({"tenant.id": "acme", "plan": "pro", "seats": 3}, propagate=True)
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, ctx)
    assert "tenant.id=acme" in carrier["baggage"]
    assert "business.plan=pro" in carrier["baggage"]
    remote = W3CBaggagePropagator().extract(carrier)  # what the next service sees
    assert get_business_attributes(remote) == {"tenant.id": "acme", "plan": "pro", "seats": "3"}
    assert get_business_attributes(ctx)["seats"] == 3  # locally the type is kept


def test_merging_and_local_values_win_over_baggage() -> None:
    ctx = set_business_attributes({"user.id": "u1"}, propagate=True)
    ctx = set_business_attributes({"user.id": "u2", "feature.name": "search"}, context=ctx)
    assert get_business_attributes(ctx) == {"user.id": "u2", "feature.name": "search"}


def test_invalid_values_are_logged_and_skipped_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="processors.business"):
        ctx = set_business_attributes({"tenant.id": "acme", "bad": object(), "list": [1], "": "x", 3: "y"})  # type: ignore[dict-item]
    assert get_business_attributes(ctx) == {"tenant.id": "acme"}
    assert "'bad'" in caplog.text and "expected str, bool, int or float, got object" in caplog.text
    assert "invalid key" in caplog.text
    base = context.get_current()
    assert set_business_attributes({"only": None}, context=base) is base


def test_span_processor_sets_attributes_without_overwriting() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BusinessSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    token = context.attach(set_business_attributes({"tenant.id": "acme", "agent.role": "planner"}, propagate=True))
    try:
        with (
            tracer.start_as_current_span("a"),
            tracer.start_as_current_span("b", attributes={"tenant.id": "own"}),
        ):
            pass
    finally:
        context.detach(token)
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert spans["a"] == {"tenant.id": "acme", "agent.role": "planner"}
    assert spans["b"] == {"tenant.id": "own", "agent.role": "planner"}


def _request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    set_attribute(rs.resource.attributes, "service.name", "node-api")
    set_attribute(rs.resource.attributes, "tenant.id", "acme")
    spans = rs.scope_spans.add().spans
    spans.add(name="plain")
    own = spans.add(name="own")
    set_attribute(own.attributes, "tenant.id", "other")
    bare = request.resource_spans.add().scope_spans.add().spans  # a resource without tenant
    bare.add(name="bare")
    return request


def _names(request: ExportTraceServiceRequest) -> dict[str, dict[str, object]]:
    return {
        s.name: attributes_to_dict(s.attributes)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    }


def _run(config: BusinessConfig, request: Request, signal: Signal = Signal.TRACES) -> None:
    (factory,) = factories
    processor = factory.create(CreateSettings(ComponentID("business"), signal), config, _Sink())
    asyncio.run(processor.consume(signal, request))


def test_collector_copies_resource_attributes_and_fills_defaults() -> None:
    request = _request()
    _run(
        BusinessConfig(from_resource=["tenant.id"], defaults={"tenant.id": "unknown", "feature.name": "n/a"}),
        request,
    )
    spans = _names(request)
    assert spans["plain"] == {"tenant.id": "acme", "feature.name": "n/a"}
    assert spans["own"] == {"tenant.id": "other", "feature.name": "n/a"}
    assert spans["bare"] == {"tenant.id": "unknown", "feature.name": "n/a"}


def test_collector_override_replaces_span_values() -> None:
    request = _request()
    _run(BusinessConfig(from_resource=["tenant.id"], override=True), request)
    spans = _names(request)
    assert spans["own"] == {"tenant.id": "acme"}
    assert spans["bare"] == {}


def test_config_validate() -> None:
    assert BusinessConfig().validate() == []
    assert BusinessConfig(from_resource=[""], defaults={"k": [1]}).validate() == [  # type: ignore[dict-item]
        "from_resource[0]: expected a non-empty attribute key, got ''",
        "defaults.k: expected a string, got list",
    ]


def test_collector_copies_baggage_like_span_attributes_to_their_names() -> None:
    request = _request()
    spans = request.resource_spans[0].scope_spans[0].spans
    set_attribute(spans[0].attributes, "business.plan", "pro")
    set_attribute(spans[1].attributes, "business.plan", "free")
    set_attribute(spans[1].attributes, "plan", "own")
    _run(BusinessConfig(from_resource=[], from_attributes={"business.plan": "plan"}), request)
    out = _names(request)
    assert out["plain"] == {"business.plan": "pro", "plan": "pro"}
    assert out["own"] == {"tenant.id": "other", "business.plan": "free", "plan": "own"}
    assert BusinessConfig(from_attributes={"a": ""}).validate() == [
        "from_attributes.a: expected a non-empty target key, got ''"
    ]

"""The collector faces' cheap pre-checks (processors.pdata.items_containing, correlation's request-level key
search) skip only items that could not change: results equal a scan of every item's attributes."""

from __future__ import annotations

import asyncio
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from processors import correlation, cost
from processors._attributes import attributes_to_dict, set_attribute
from processors.pdata import items_containing
from processors.pipeline import ComponentID, CreateSettings, Request, Signal

MODEL_KEYS = (b"gen_ai.request.model", b"gen_ai.response.model")


class _Keep:
    def __init__(self) -> None:
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)


def _run(factories: tuple[object, ...], kind: str, request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    factory = next(f for f in factories if f.type == kind)  # type: ignore[attr-defined]
    sink = _Keep()
    processor = factory.create(CreateSettings(ComponentID(kind), Signal.TRACES), factory.config_type(), sink)  # type: ignore[attr-defined]
    asyncio.run(processor.consume(Signal.TRACES, request))
    return request


def _scope(rng: random.Random, n: int, genai_share: float = 0.3) -> ScopeSpans:
    ss = ScopeSpans()
    ss.scope.name = "gen_ai.request.model"  # a needle outside every span: must not select one
    for i in range(n):
        span = ss.spans.add(name=f"op-{i}", trace_id=bytes([i % 3 + 1]) * 16, span_id=bytes([i % 250 + 1]) * 8)
        set_attribute(span.attributes, "http.route", "/v1/chat")
        if rng.random() < genai_share:
            set_attribute(span.attributes, "gen_ai.request.model", "gpt-4o-mini")
            set_attribute(span.attributes, "gen_ai.usage.input_tokens", rng.randrange(1, 5000))
            set_attribute(span.attributes, "gen_ai.usage.output_tokens", rng.randrange(1, 500))
        if rng.random() < 0.1:
            set_attribute(span.attributes, "note", "mentions gen_ai.response.model in a value only")
        if rng.random() < 0.05:  # > 16 KiB: a three-byte length
            set_attribute(span.attributes, "big", "x" * 20_000)
    return ss


def _holds_a_model_key(data: bytes) -> bool:
    return any(key in data for key in MODEL_KEYS)


def test_items_containing_selects_exactly_the_spans_with_a_needle() -> None:
    rng = random.Random(7)
    request = ExportTraceServiceRequest()
    for sizes in ((0, 1), (5,), (), (300, 0, 40)):
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="note").value.string_value = "gen_ai.request.model"  # outside every span
        for n in sizes:
            rs.scope_spans.append(_scope(rng, n))
    got = items_containing(request.SerializeToString(), (1, 2, 2), MODEL_KEYS)
    expected = {
        (r, s): selected
        for r, rs in enumerate(request.resource_spans)
        for s, ss in enumerate(rs.scope_spans)
        if (selected := [i for i, span in enumerate(ss.spans) if _holds_a_model_key(span.SerializeToString())])
    }
    assert got == expected
    assert len(expected) >= 3
    for (r, s), selected in expected.items():
        spans = request.resource_spans[r].scope_spans[s].spans
        keys = [i for i, span in enumerate(spans) if {kv.key for kv in span.attributes} & {"gen_ai.request.model"}]
        assert set(keys) <= set(selected)
    one_scope = request.resource_spans[3].scope_spans[0]
    assert items_containing(one_scope.SerializeToString(), (2,), MODEL_KEYS) == {(): expected[(3, 0)]}
    assert items_containing(b"", (1, 2, 2), MODEL_KEYS) == {}
    assert items_containing(b"\x0b", (1, 2, 2), (b"\x0b",)) is None  # a group's tag: not OTLP, look at every span


def test_cost_prices_every_priceable_span_and_only_those() -> None:
    rng = random.Random(11)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    # Mostly-GenAI scopes switch the span-selecting pre-check off for the next scope, sparse ones back on.
    for share in (0.3, 0.9, 1.0, 0.1, 0.0, 0.95, 0.3):
        rs.scope_spans.append(_scope(rng, 200, share))
    _run(cost.factories, "cost", request)
    table = cost.default_price_table()
    priced = 0
    for ss in rs.scope_spans:
        for span in ss.spans:
            attrs = attributes_to_dict(span.attributes)
            has_cost = "cost.usd" in attrs
            without = {k: v for k, v in attrs.items() if k != "cost.usd"}
            assert has_cost == bool(cost.cost_attributes(without, table)), span.name
            priced += has_cost
    assert priced > 600


def test_correlation_fills_from_a_key_anywhere_and_leaves_requests_without_keys_unchanged() -> None:
    rng = random.Random(3)
    plain = ExportTraceServiceRequest()
    plain.resource_spans.add().scope_spans.append(_scope(rng, 50))
    before = plain.SerializeToString()
    assert _run(correlation.factories, "correlation", plain).SerializeToString() == before

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.scope_spans.append(_scope(rng, 50))
    rs.scope_spans.append(_scope(rng, 50))
    carrier = rs.scope_spans[1].spans[40]
    set_attribute(carrier.attributes, "http.request.header.x-request-id", ["req-42"])
    _run(correlation.factories, "correlation", request)
    for ss in rs.scope_spans:
        for span in ss.spans:
            got = attributes_to_dict(span.attributes).get("correlation.id")
            assert got == ("req-42" if span.trace_id == carrier.trace_id else None), span.name


def test_correlation_is_right_for_a_mix_of_requests_through_one_processor() -> None:
    """The pre-check is skipped after a request with ids and resumed after one without: results never depend
    on what came before."""
    factory = correlation.factories[0]
    sink = _Keep()
    processor = factory.create(CreateSettings(ComponentID("correlation"), Signal.TRACES), factory.config_type(), sink)
    rng = random.Random(5)
    pattern = [True, True, False, False, True, False, True]
    for with_id in pattern:
        request = ExportTraceServiceRequest()
        ss = request.resource_spans.add().scope_spans.add()
        ss.CopyFrom(_scope(rng, 20))
        if with_id:
            set_attribute(ss.spans[7].attributes, "request.id", "r-7")
        asyncio.run(processor.consume(Signal.TRACES, request))
        trace = ss.spans[7].trace_id
        for span in ss.spans:
            got = attributes_to_dict(span.attributes).get("correlation.id")
            assert got == ("r-7" if with_id and span.trace_id == trace else None)
    assert len(sink.got) == len(pattern)

"""One call, one price: spans reporting one gen_ai.response.id are priced once in either face, in any order."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue

from processors._attributes import attributes_to_dict, set_attribute
from processors.cost import CostConfig, default_price_table, factories
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from processors.sdk import EnrichingSpanProcessor

CALL: dict[str, AttributeValue] = {
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-20250514",
}
# OpenLLMetry's anthropic span: input inclusive of the cache, as the semantic conventions say.
INSTRUMENTATION: dict[str, AttributeValue] = {
    **CALL,
    "gen_ai.response.id": "msg_01",
    "gen_ai.usage.input_tokens": 10_000,
    "gen_ai.usage.cache_read.input_tokens": 1_000,
    "gen_ai.usage.cache_creation.input_tokens": 3_000,
    "gen_ai.usage.output_tokens": 500,
}
# The Anthropic SDK's own span of the same call: no input token count at all.
SDK_TRACING = {
    **CALL,
    "gen_ai.response.id": "msg_01",
    "gen_ai.usage.cache_read.input_tokens": 1_000,
    "gen_ai.usage.cache_write.input_tokens": 3_000,
    "gen_ai.usage.output_tokens": 500,
}
BILL = float(
    default_price_table().llm_cost("claude-sonnet-4-20250514", 10_000, 500, 1_000, cache_write_tokens=3_000) or 0
)


def _sdk_spans(*attribute_sets: dict[str, Any]) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    table = default_price_table()
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=table, redact=False))
    tracer = provider.get_tracer("t")
    ids = []
    for i, attributes in enumerate(attribute_sets):
        span = tracer.start_span(f"s{i}", attributes=attributes)
        ids.append(format(span.get_span_context().span_id, "016x"))
        span.end()
    by_name = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    return [{**by_name[f"s{i}"], "_id": ids[i]} for i in range(len(attribute_sets))]


@pytest.mark.parametrize("order", [(INSTRUMENTATION, SDK_TRACING), (SDK_TRACING, INSTRUMENTATION)])
def test_sdk_face_prices_the_call_once_on_the_span_with_complete_usage(order: tuple[dict[str, Any], ...]) -> None:
    spans = _sdk_spans(*order)
    priced = [s for s in spans if "cost.usd" in s]
    assert [s["cost.usd"] for s in priced] == [BILL] and "gen_ai.usage.input_tokens" in priced[0]
    if order[0] is INSTRUMENTATION:  # the later span is folded into the earlier one, and says so
        assert spans[1]["cost.duplicate_of"] == spans[0]["_id"]
    assert float(Decimal("0.03705")) == BILL  # 6,000*3 + 1,000*0.30 + 3,000*3.75 + 500*15 per million


def test_two_instrumentations_of_one_call_are_priced_once() -> None:
    spans = _sdk_spans(INSTRUMENTATION, {**INSTRUMENTATION, "cost.usd": BILL})
    assert spans[0]["cost.usd"] == BILL
    assert "cost.usd" not in spans[1] and spans[1]["cost.duplicate_of"] == spans[0]["_id"]
    other_call = _sdk_spans(INSTRUMENTATION, {**INSTRUMENTATION, "gen_ai.response.id": "msg_02"})
    assert [s["cost.usd"] for s in other_call] == [BILL, BILL]


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def _request(spans: list[tuple[int, dict[str, Any]]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    out = request.resource_spans.add().scope_spans.add().spans
    for span_id, attrs in spans:
        span = out.add(name=f"s{span_id}", trace_id=b"\x01" * 16, span_id=span_id.to_bytes(8, "big"))
        span.start_time_unix_nano = 1_760_000_000 * 10**9
        for key, value in attrs.items():
            set_attribute(span.attributes, key, value)
    return request


# The same call as three spans: an instrumentation's already priced by an app's SDK, another instrumentation's
# without cost, and the Anthropic SDK's without an input count.
THREE = [(1, {**INSTRUMENTATION, "cost.usd": BILL}), (2, INSTRUMENTATION), (3, SDK_TRACING)]


@pytest.mark.parametrize("order", list(itertools.permutations(THREE)))
@pytest.mark.parametrize("batches", [1, 3])
def test_collector_face_prices_once_whatever_the_order_and_batching(order: Any, batches: int) -> None:
    (factory,) = factories
    processor = factory.create(CreateSettings(ComponentID("cost"), Signal.TRACES), CostConfig(), _Sink())
    requests = [_request(list(order))] if batches == 1 else [_request([span]) for span in order]
    for request in requests:
        asyncio.run(processor.consume(Signal.TRACES, request))
    spans = {
        int.from_bytes(s.span_id, "big"): attributes_to_dict(s.attributes)
        for r in requests
        for s in r.resource_spans[0].scope_spans[0].spans
    }
    priced = [i for i, a in spans.items() if "cost.usd" in a]
    assert len(priced) == 1 and spans[priced[0]]["cost.usd"] == BILL
    for i, attrs in spans.items():  # the others point at the holder unless they came first, unpriced
        if i != priced[0] and "cost.duplicate_of" in attrs:
            assert attrs["cost.duplicate_of"] == priced[0].to_bytes(8, "big").hex()
    assert sum("cost.duplicate_of" in a for a in spans.values()) >= 1
    # the same span exported again (a retry, a second exporter) is not a duplicate of itself
    again = _request([(priced[0], {**INSTRUMENTATION, "cost.usd": BILL})])
    asyncio.run(processor.consume(Signal.TRACES, again))
    assert attributes_to_dict(again.resource_spans[0].scope_spans[0].spans[0].attributes)["cost.usd"] == BILL


def test_a_framework_span_repeating_its_childs_usage_is_folded_into_the_child() -> None:
    """LangChain-style: the framework's span around the client call reports the same model and tokens."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    table = default_price_table()
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=table, redact=False))
    tracer = provider.get_tracer("t")
    framework_usage = {k: v for k, v in INSTRUMENTATION.items() if k != "gen_ai.response.id"}
    with tracer.start_as_current_span("ChatAnthropic.chat", attributes=framework_usage) as parent:
        with tracer.start_as_current_span("anthropic.chat", attributes=INSTRUMENTATION) as child:
            child_id = format(child.get_span_context().span_id, "016x")
        parent_id = format(parent.get_span_context().span_id, "016x")
    other = {**INSTRUMENTATION, "gen_ai.response.id": "m2"}
    with (
        tracer.start_as_current_span("agent", attributes={**framework_usage, "gen_ai.usage.output_tokens": 501}),
        tracer.start_as_current_span("anthropic.chat", attributes=other),
    ):
        pass
    spans = {format(s.context.span_id, "016x"): dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert spans[child_id]["cost.usd"] == BILL
    assert "cost.usd" not in spans[parent_id] and spans[parent_id]["cost.duplicate_of"] == child_id
    # a parent whose usage differs from its child's is a call of its own
    costs = [a.get("cost.usd", 0.0) for a in spans.values()]
    assert sorted(isinstance(c, float) and c > 0 for c in costs) == [False, True, True, True]


def test_collector_face_folds_a_parent_repeating_its_childs_usage() -> None:
    (factory,) = factories
    processor = factory.create(CreateSettings(ComponentID("cost"), Signal.TRACES), CostConfig(), _Sink())
    framework_usage = {k: v for k, v in INSTRUMENTATION.items() if k != "gen_ai.response.id"}
    request = _request([(2, INSTRUMENTATION), (1, framework_usage)])
    request.resource_spans[0].scope_spans[0].spans[0].parent_span_id = (1).to_bytes(8, "big")
    asyncio.run(processor.consume(Signal.TRACES, request))
    child, parent = (attributes_to_dict(s.attributes) for s in request.resource_spans[0].scope_spans[0].spans)
    assert child["cost.usd"] == BILL
    assert "cost.usd" not in parent and parent["cost.duplicate_of"] == (2).to_bytes(8, "big").hex()

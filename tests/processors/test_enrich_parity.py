"""One enrichment, two faces: a span gets the same cost.usd (and redaction) in the SDK and the collector.

The collector side is fed what a non-Python service would send: the raw span (no cost) encoded with the
official OTLP exporter's encoder.
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue

from processors import cost, redaction
from processors._attributes import attributes_to_dict
from processors.cost import CostConfig, PriceTable
from processors.pdata import iter_spans
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from processors.redaction import RedactionConfig
from processors.sdk import EnrichingSpanProcessor
from tests.support.sdk_data import attrs_of

pytestmark = pytest.mark.usefixtures("sdk_path")


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


CASES = [
    {
        "gen_ai.request.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1234,
        "gen_ai.usage.output_tokens": 567,
    },
    {
        "gen_ai.request.model": "claude-3-5-sonnet",
        "gen_ai.response.model": "claude-3-5-sonnet-20241022",
        "gen_ai.usage.input_tokens": 98765,
        "gen_ai.usage.output_tokens": 4321,
        "gen_ai.usage.cache_read.input_tokens": 50000,
    },
    {
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 3,
    },
    {"gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 333333},
    {"gen_ai.request.model": "o4-mini", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 10**9},
]


@pytest.mark.parametrize("attributes", CASES)
def test_sdk_and_collector_compute_the_same_cost(attributes: dict[str, AttributeValue]) -> None:
    table = PriceTable.from_source(None)
    enriched, raw = InMemorySpanExporter(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(enriched), price_table=table, redact=True))
    provider.add_span_processor(SimpleSpanProcessor(raw))  # what a service without our SDK would export
    with provider.get_tracer("svc").start_as_current_span(
        "llm", attributes={**attributes, "http.request.header.authorization": ["Bearer abcdefghijklmnop"]}
    ):
        pass
    (sdk_span,) = enriched.get_finished_spans()
    (raw_span,) = raw.get_finished_spans()
    assert "cost.usd" not in attrs_of(raw_span)

    request = encode_spans([raw_span])
    sink = _Sink()
    for module, config, type_name in (
        (cost, CostConfig(), "cost"),
        (redaction, RedactionConfig(), "redaction"),
    ):
        (factory,) = module.factories
        processor = factory.create(CreateSettings(ComponentID(type_name), Signal.TRACES), config, sink)
        asyncio.run(processor.consume(Signal.TRACES, request))
    ((_, collector_span),) = list(iter_spans(request))
    collector_attributes = attributes_to_dict(collector_span.attributes)

    assert isinstance(attrs_of(sdk_span)["cost.usd"], float)
    assert collector_attributes["cost.usd"] == attrs_of(sdk_span)["cost.usd"]
    assert collector_attributes["http.request.header.authorization"] == ["[REDACTED]"]
    assert attrs_of(sdk_span)["http.request.header.authorization"] == ("[REDACTED]",)
    # and the whole attribute set matches, as the OTLP encoder would send the SDK span
    (sdk_encoded,) = list(iter_spans(encode_spans([sdk_span])))
    assert attributes_to_dict(sdk_encoded[1].attributes) == collector_attributes

"""correlation: id validation, baggage API, the SDK span processor and the collector face."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage, context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue

from processors._attributes import attributes_to_dict, set_attribute
from processors.correlation import (
    CORRELATION_ID_KEY,
    CorrelationConfig,
    CorrelationSpanProcessor,
    factories,
    get_correlation_id,
    new_correlation_id,
    set_correlation_id,
    validate_correlation_id,
)
from processors.pdata import iter_spans
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from tests.support.sdk_data import attrs_of

_ALPHABET = string.ascii_letters + string.digits + "._:-"


class _Sink:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def _run(config: CorrelationConfig, signal: Signal, request: Request) -> _Sink:
    (factory,) = factories
    sink = _Sink()
    processor = factory.create(CreateSettings(ComponentID("correlation"), signal), config, sink)
    asyncio.run(processor.consume(signal, request))
    return sink


@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=128))
def test_valid_ids_are_accepted_unchanged(value: str) -> None:
    assert validate_correlation_id(value) == value


@given(st.text(min_size=1, max_size=140))
def test_ids_with_any_other_character_or_length_are_rejected(value: str) -> None:
    ok = len(value) <= 128 and all(c in _ALPHABET for c in value)
    assert (validate_correlation_id(value) is not None) is ok


@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_non_strings_are_rejected(value: object) -> None:
    assert validate_correlation_id(value) is None


def test_edge_cases() -> None:
    assert validate_correlation_id("") is None
    assert validate_correlation_id("a" * 128) == "a" * 128
    assert validate_correlation_id("a" * 129) is None
    assert validate_correlation_id("abc\n") is None  # no trailing-newline loophole
    assert validate_correlation_id(new_correlation_id()) is not None
    assert new_correlation_id() != new_correlation_id()


def test_baggage_round_trip_and_invalid_id_leaves_context_unchanged() -> None:
    ctx = set_correlation_id("req-42")
    assert get_correlation_id(ctx) == "req-42"
    assert baggage.get_baggage(CORRELATION_ID_KEY, ctx) == "req-42"
    assert get_correlation_id() is None  # current context untouched
    same = set_correlation_id("bad id with spaces", ctx)
    assert same is ctx
    assert get_correlation_id(baggage.set_baggage(CORRELATION_ID_KEY, "x" * 200)) is None


def test_span_processor_copies_baggage_id_onto_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CorrelationSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    token = context.attach(set_correlation_id("corr-1"))
    try:
        with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child"):
            pass
        with tracer.start_as_current_span("explicit", attributes={CORRELATION_ID_KEY: "mine"}):
            pass
    finally:
        context.detach(token)
    with tracer.start_as_current_span("outside"):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert attrs_of(spans["parent"])[CORRELATION_ID_KEY] == "corr-1"
    assert attrs_of(spans["child"])[CORRELATION_ID_KEY] == "corr-1"
    assert attrs_of(spans["explicit"])[CORRELATION_ID_KEY] == "mine"
    assert CORRELATION_ID_KEY not in attrs_of(spans["outside"])


def _trace_request(spans: Sequence[tuple[str, Mapping[str, AttributeValue]]], same_trace: bool = True) -> Request:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    if same_trace:
        with tracer.start_as_current_span("root", attributes=dict(spans[0][1])):
            for name, attrs in spans[1:]:
                with tracer.start_as_current_span(name, attributes=dict(attrs)):
                    pass
    else:
        for name, attrs in spans:
            with tracer.start_as_current_span(name, attributes=dict(attrs)):
                pass
    return encode_spans(exporter.get_finished_spans())


def _by_name(request: Request) -> dict[str, dict[str, object]]:
    return {span.name: attributes_to_dict(span.attributes) for _, span in iter_spans(request)}


def test_collector_takes_id_from_header_attributes_in_configured_order() -> None:
    request = _trace_request(
        [
            ("root", {"http.request.header.x-request-id": ["req-9"], "request.id": "other"}),
            ("bad", {"http.request.header.x-correlation-id": ["has space"], "request.id": "r-2"}),
        ],
        same_trace=False,
    )
    _run(CorrelationConfig(), Signal.TRACES, request)
    spans = _by_name(request)
    assert spans["root"][CORRELATION_ID_KEY] == "req-9"
    assert spans["bad"][CORRELATION_ID_KEY] == "r-2"  # the invalid header value is skipped


def test_collector_fills_spans_of_the_same_trace_only_when_enabled() -> None:
    spans = [("root", {CORRELATION_ID_KEY: "c-1"}), ("db", {}), ("cache", {})]
    request = _trace_request(spans)
    _run(CorrelationConfig(), Signal.TRACES, request)
    assert {a[CORRELATION_ID_KEY] for a in _by_name(request).values()} == {"c-1"}

    request = _trace_request(spans)
    _run(CorrelationConfig(from_trace=False), Signal.TRACES, request)
    assert CORRELATION_ID_KEY not in _by_name(request)["db"]

    request = _trace_request(spans, same_trace=False)
    _run(CorrelationConfig(), Signal.TRACES, request)
    assert CORRELATION_ID_KEY not in _by_name(request)["db"]


def test_collector_keeps_existing_valid_id_and_leaves_unfixable_invalid_one() -> None:
    request = _trace_request(
        [("root", {CORRELATION_ID_KEY: "own", "request.id": "other"}), ("odd", {CORRELATION_ID_KEY: "a b"})],
        same_trace=False,
    )
    _run(CorrelationConfig(), Signal.TRACES, request)
    spans = _by_name(request)
    assert spans["root"][CORRELATION_ID_KEY] == "own"
    assert spans["odd"][CORRELATION_ID_KEY] == "a b"


def test_collector_fills_log_records() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    first = records.add(trace_id=b"\x01" * 16)
    set_attribute(first.attributes, "http.request.header.x-correlation-id", ["log-1"])
    records.add(trace_id=b"\x01" * 16)
    records.add(trace_id=b"\x02" * 16)
    sink = _run(CorrelationConfig(), Signal.LOGS, request)
    assert sink.requests == [request]
    values = [attributes_to_dict(r.attributes).get(CORRELATION_ID_KEY) for r in records]
    assert values == ["log-1", "log-1", None]


def test_config_validate_names_the_field() -> None:
    assert CorrelationConfig().validate() == []
    assert CorrelationConfig(from_attributes=["ok", ""]).validate() == [
        "from_attributes[1]: expected a non-empty attribute key, got ''"
    ]

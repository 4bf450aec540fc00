"""Fuzzing what a hostile client controls (hypothesis): OTLP requests of any shape, and bytes that are almost OTLP.

- The decoders (protobuf, OTLP/JSON) either return a request or raise their own clean error, never anything else.
- The default enrichment processors (correlation, business, cost, redaction) never raise on a request that decoded,
  and pass on every item (nothing accepted and then lost).
- The sink's row builders give every span, log record and data point a row or a quarantine reason, never an
  exception and never a missing item.
- A real collector's OTLP/HTTP receiver answers any body with a client error or success, never a 500.

``FUZZ_EXAMPLES`` sets the number of cases per test (default 500: 2,500 in all, the CI run); ``scripts/fuzz`` runs
many more.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector.exporters.postgres.logs import log_records
from collector.exporters.postgres.metrics import point_records
from collector.exporters.postgres.traces import span_records
from processors import business, correlation, redaction
from processors.cost import factories as cost_factories
from processors.pdata import JSONError, Signal, from_json, item_count, new_request, parse_request, to_json
from processors.pdata.pieces import merge_in_pieces
from processors.pipeline import ComponentID, Consumer, CreateSettings, DataError, ProcessorFactory, Request

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# ------------------------------------------------------------------------------------------------ strategies

_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["service.name", "gen_ai.request.model", "gpt-4o", "tenant.id", "correlation.id", "\x00", ""]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8).map(lambda t: "password=" + t),
)
_keys = st.one_of(
    _text,
    st.sampled_from(
        [
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.request.model",
            "gen_ai.system",
            "cost.usd",
            "user.id",
            "session.id",
            "http.route",
            "db.password",
            "correlation.id",
            "tenant.id",
            "service.name",
            "exception.message",
        ]
    ),
)
_ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1, -(2**63)]))
_floats = st.floats(allow_nan=True, allow_infinity=True)


def _any_values(depth: int = 3) -> st.SearchStrategy[AnyValue]:
    scalar = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), _text),
        st.builds(lambda v: AnyValue(int_value=v), _ints),
        st.builds(lambda v: AnyValue(double_value=v), _floats),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=16)),
        st.just(AnyValue()),
    )
    if depth == 0:
        return scalar
    inner = _any_values(depth - 1)
    return st.one_of(
        scalar,
        st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(_keys, inner), max_size=3).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    )


_attributes = st.lists(st.tuples(_keys, _any_values()), max_size=6).map(
    lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs]
)
_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
_times = st.one_of(st.integers(0, 2**64 - 1), st.just(0), st.integers(1_600_000_000 * 10**9, 2_100_000_000 * 10**9))


@st.composite
def _resource(draw: Any) -> dict[str, Any]:
    return {"resource": {"attributes": draw(_attributes)}, "scope": {"name": draw(_text), "version": draw(_text)}}


@st.composite
def trace_requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        head = draw(_resource())
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(head["resource"]["attributes"])
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = head["scope"]["name"], head["scope"]["version"]
        for _ in range(draw(st.integers(0, 4))):
            span = ss.spans.add(
                trace_id=draw(_ids),
                span_id=draw(_ids),
                parent_span_id=draw(st.one_of(st.just(b""), _ids)),
                name=draw(_text),
                kind=draw(st.integers(0, 7)),
                start_time_unix_nano=draw(_times),
                end_time_unix_nano=draw(_times),
            )
            span.attributes.extend(draw(_attributes))
            span.status.code = draw(st.integers(0, 5))
            span.status.message = draw(_text)
            for _ in range(draw(st.integers(0, 2))):
                event = span.events.add(name=draw(_text), time_unix_nano=draw(_times))
                event.attributes.extend(draw(_attributes))
            for _ in range(draw(st.integers(0, 1))):
                link = span.links.add(trace_id=draw(_ids), span_id=draw(_ids))
                link.attributes.extend(draw(_attributes))
    return request


@st.composite
def log_requests(draw: Any) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rl = request.resource_logs.add()
        rl.resource.attributes.extend(draw(_attributes))
        sl = rl.scope_logs.add()
        for _ in range(draw(st.integers(0, 4))):
            record = sl.log_records.add(
                time_unix_nano=draw(_times),
                observed_time_unix_nano=draw(_times),
                severity_number=draw(st.integers(0, 30)),
                severity_text=draw(_text),
                trace_id=draw(st.one_of(st.just(b""), _ids)),
                span_id=draw(st.one_of(st.just(b""), _ids)),
            )
            record.body.CopyFrom(draw(_any_values()))
            record.attributes.extend(draw(_attributes))
    return request


@st.composite
def metric_requests(draw: Any) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(draw(_attributes))
        sm = rm.scope_metrics.add()
        for _ in range(draw(st.integers(0, 3))):
            metric = sm.metrics.add(name=draw(_text), unit=draw(_text))
            kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary"]))
            points = getattr(metric, kind).data_points
            for _ in range(draw(st.integers(0, 3))):
                point = points.add(time_unix_nano=draw(_times), start_time_unix_nano=draw(_times))
                point.attributes.extend(draw(_attributes))
                if kind in ("gauge", "sum"):
                    if draw(st.booleans()):
                        point.as_double = draw(_floats)
                    else:
                        point.as_int = draw(_ints)
                elif kind == "histogram":
                    point.count = draw(st.integers(0, 2**64 - 1))
                    point.sum = draw(_floats)
                    point.bucket_counts.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=5)))
                    point.explicit_bounds.extend(draw(st.lists(_floats, max_size=5)))
                    exemplar = point.exemplars.add(time_unix_nano=draw(_times), as_double=draw(_floats))
                    exemplar.filtered_attributes.extend(draw(_attributes))
                elif kind == "exponential_histogram":
                    point.count = draw(st.integers(0, 2**64 - 1))
                    point.scale = draw(st.integers(-(2**31), 2**31 - 1))
                    point.zero_count = draw(st.integers(0, 2**64 - 1))
                    point.positive.offset = draw(st.integers(-(2**31), 2**31 - 1))
                    point.positive.bucket_counts.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=5)))
                else:
                    point.count = draw(st.integers(0, 2**64 - 1))
                    point.sum = draw(_floats)
                    point.quantile_values.add(quantile=draw(_floats), value=draw(_floats))
    return request


_REQUESTS = {Signal.TRACES: trace_requests(), Signal.LOGS: log_requests(), Signal.METRICS: metric_requests()}
_any_request = st.sampled_from(list(Signal)).flatmap(lambda s: st.tuples(st.just(s), _REQUESTS[s]))


@st.composite
def mutated(draw: Any) -> tuple[Signal, bytes]:
    """A valid request's bytes with a few bytes flipped, cut, or inserted: almost OTLP."""
    signal, request = draw(_any_request)
    data = bytearray(request.SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return signal, bytes(data)


# ------------------------------------------------------------------------------------------------ decoders


@FUZZ
@given(mutated())
def test_protobuf_decoding_returns_a_request_or_a_decode_error(case: tuple[Signal, bytes]) -> None:
    signal, data = case
    try:
        request = parse_request(signal, data)
    except DecodeError:
        return
    item_count(signal, request)  # what the receiver does next must work on whatever decoded


def _parsed(signal: Signal, data: bytes, piece: int | None) -> Message | None:
    request: Message = new_request(signal)
    try:
        if piece is None:
            request.MergeFromString(data)
        else:
            merge_in_pieces(request, data, piece)
    except DecodeError:
        return None
    return request


def _encoded(case: tuple[Signal, object]) -> tuple[Signal, bytes]:
    signal, request = case
    assert isinstance(request, Message)
    return signal, request.SerializeToString()


@FUZZ
@given(st.one_of(_any_request.map(_encoded), mutated()), st.integers(1, 300))
def test_protobuf_parsed_in_pieces_is_the_message_parsed_whole(case: tuple[Signal, bytes], piece: int) -> None:
    """Pieces of a few bytes, so that every level of every request is split: the same message, or both fail."""
    signal, data = case
    whole, pieces = _parsed(signal, data, None), _parsed(signal, data, piece)
    assert (pieces is None) == (whole is None)
    if whole is not None and pieces is not None:
        assert pieces == whole
        assert pieces.SerializeToString(deterministic=True) == whole.SerializeToString(deterministic=True)


@FUZZ
@given(_any_request, st.one_of(st.none(), st.text(max_size=30)))
def test_otlp_json_decoding_round_trips_or_fails_cleanly(case: tuple[Signal, Request], garble: str | None) -> None:
    signal, request = case
    body = to_json(request)
    if garble is not None:
        body = body[: len(body) // 2] + garble.encode() + body[len(body) // 2 :]
    try:
        decoded = from_json(body, new_request(signal))
    except JSONError:
        assert garble is not None, "a body we encoded did not decode"
        return
    if garble is None:
        assert item_count(signal, decoded) == item_count(signal, request)


def _json_decoded(signal: Signal, body: bytes, piece: int) -> Message | None:
    try:
        return from_json(body, new_request(signal), piece)
    except JSONError:
        return None


def _snake(node: Any) -> Any:
    """Every key under its original proto name (json_format accepts both), e.g. scopeSpans -> scope_spans."""
    if isinstance(node, dict):
        return {re.sub("([A-Z])", lambda m: "_" + m.group(1).lower(), k): _snake(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_snake(item) for item in node]
    return node


def _respelled(body: bytes, spacing: bool, snake: bool) -> bytes:
    """The same OTLP/JSON written otherwise: whitespace between every token, original (snake_case) field names."""
    tree = json.loads(body)
    return json.dumps(_snake(tree) if snake else tree, indent=1 if spacing else None).encode()


@FUZZ
@given(
    _any_request,
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.tuples(st.floats(0, 1), st.text(max_size=30))),
)
def test_otlp_json_decoded_in_pieces_is_the_message_decoded_whole(
    case: tuple[Signal, Request], spacing: bool, snake: bool, garble: tuple[float, str] | None
) -> None:
    """Every body decoded an item at a time (piece 0) gives the message json.loads gives, or both fail."""
    signal, request = case
    body = _respelled(to_json(request), spacing, snake)
    if garble is not None:
        at = int(len(body) * garble[0])
        body = body[:at] + garble[1].encode() + body[at:]
    whole, pieces = _json_decoded(signal, body, len(body)), _json_decoded(signal, body, 0)
    assert (pieces is None) == (whole is None)
    if whole is not None and pieces is not None:
        assert pieces.SerializeToString(deterministic=True) == whole.SerializeToString(deterministic=True)
    if garble is None:
        assert pieces is not None, "a body we encoded did not decode"
        assert item_count(signal, pieces) == item_count(signal, request)


# ------------------------------------------------------------------------------------------------ pipeline


class _Sink(Consumer):
    def __init__(self) -> None:
        self.items = 0

    async def consume(self, signal: Signal, request: Request) -> None:
        self.items += item_count(signal, request)


def _chain(signal: Signal) -> tuple[Consumer, _Sink]:
    sink = _Sink()
    consumer: Consumer = sink
    modules: list[Sequence[ProcessorFactory[Any]]] = [
        correlation.factories,
        business.factories,
        cost_factories,
        redaction.factories,
    ]
    if signal is Signal.METRICS:
        modules = [redaction.factories]
    for factories in reversed(modules):
        (factory,) = factories
        settings = CreateSettings(ComponentID(factory.type), signal)
        consumer = factory.create(settings, factory.config_type(), consumer)
    return consumer, sink


def _array_model_span() -> tuple[Signal, Request]:
    """Found by this test: a model given as an array made the cost processor's call fingerprint unhashable."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\1" * 8)
    span.attributes.add(key="gen_ai.request.model").value.array_value.SetInParent()
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 0
    return Signal.TRACES, request


@FUZZ
@given(_any_request)
@example(_array_model_span())
def test_enrichment_processors_never_raise_and_pass_every_item_on(case: tuple[Signal, Request]) -> None:
    signal, request = case
    items = item_count(signal, request)
    chain, sink = _chain(signal)
    try:
        asyncio.run(chain.consume(signal, request))
    except DataError:
        pytest.fail("the enrichment processors rejected data")
    assert sink.items == items


# ------------------------------------------------------------------------------------------------ sink rows


@FUZZ
@given(_any_request)
def test_sink_row_building_accounts_for_every_item(case: tuple[Signal, Request]) -> None:
    signal, request = case
    items = item_count(signal, request)
    if signal is Signal.TRACES:
        assert isinstance(request, ExportTraceServiceRequest)
        records: list[Any] = span_records(request, request.SerializeToString())
    elif signal is Signal.LOGS:
        assert isinstance(request, ExportLogsServiceRequest)
        records = log_records(request)
    else:
        assert isinstance(request, ExportMetricsServiceRequest)
        records = point_records(request)
    assert len(records) == items  # each one a row or a quarantine reason: nothing silently dropped
    for record in records:
        assert record.row or record.failure


# ------------------------------------------------------------------------------------------------ receiver


@pytest.fixture(scope="module")
def receiver() -> Any:
    from tests.collector.conftest import RunningCollector, otlp_config

    collector = RunningCollector(otlp_config()).start()
    with httpx.Client(base_url=collector.http_url, timeout=30) as client:
        yield client
    collector.stop()


@FUZZ
@given(
    st.sampled_from(["/v1/traces", "/v1/metrics", "/v1/logs"]),
    st.sampled_from(["application/x-protobuf", "application/json"]),
    st.sampled_from(["", "gzip", "zstd", "snappy", "deflate"]),
    st.one_of(mutated().map(lambda case: case[1]), st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
)
def test_the_http_receiver_never_answers_500(
    receiver: httpx.Client, path: str, media: str, encoding: str, body: bytes
) -> None:
    headers = {"Content-Type": media}
    if encoding:
        headers["Content-Encoding"] = encoding
    response = receiver.post(path, content=body, headers=headers)
    assert response.status_code in (200, 400, 413, 415), (response.status_code, response.text[:300])

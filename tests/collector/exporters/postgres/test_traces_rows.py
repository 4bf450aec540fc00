"""span_records' fast path (attributes read from their wire bytes, cached) gives exactly what the protobuf pass gives.

The protobuf pass is what span_records falls back to (no shadow request); every case below is run both ways and the
records compared value for value (types included), then checked against the expected rows.
"""

from __future__ import annotations

import json
import math
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from collector.exporters.postgres import traces

_COLUMNS = [c for c, _ in traces.SPAN_COLUMNS]
_HOT_KEYS = [
    "correlation.id",
    "tenant.id",
    "user.id",
    "error.type",
    "http.route",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.system",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "cost.usd",
    "quality.score",
    "http.response.status_code",
    "http.status_code",
    "app.step",
    "",
    "nul\x00key",
    "k" * 130,
]
_STRINGS = ["", "a", "a\x00b", "40", " 40 ", "1e3", "nan", "0.0012", "é", "v" * 127, "v" * 128, "w" * 5000]
_FLOATS = [0.0, -0.0, 0.0012, 1e10, 9999999999.5, math.nan, math.inf, -math.inf, 200.0, 2.0**63, 3.5]
_INTS = [0, 1, -1, 200, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 127, 128, 16384]


def _canon(records: list[traces.SpanRecord]) -> list[Any]:
    def values(row: tuple[Any, ...]) -> list[tuple[str, str]]:
        return [(type(v).__name__, repr(v)) for v in row]

    return [
        (
            values(r.row),
            [values(e) for e in r.events],
            [values(lk) for lk in r.links],
            list(r.repairs),
            r.failure,
            r.span.SerializeToString(),
        )
        for r in records
    ]


def _both_ways(request: ExportTraceServiceRequest, monkeypatch: pytest.MonkeyPatch) -> list[traces.SpanRecord]:
    fast = traces.span_records(request)
    again = traces.span_records(request)  # now from the cache
    wired = traces.span_records(request, request.SerializeToString())  # the bytes a write process receives
    with monkeypatch.context() as m:
        m.setattr(traces, "_shadow", lambda request, wire: None)
        slow = traces.span_records(request)
    assert _canon(fast) == _canon(slow)
    assert _canon(again) == _canon(slow)
    assert _canon(wired) == _canon(slow)
    return fast


def _request(*attributes: tuple[str, AnyValue], **span_fields: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    span = rs.scope_spans.add().spans.add()
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    span.name = "svc.op"
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
    for name, value in span_fields.items():
        setattr(span, name, value)
    for key, value in attributes:
        span.attributes.append(KeyValue(key=key, value=value))
    return request


def _row(record: traces.SpanRecord) -> dict[str, Any]:
    return dict(zip(_COLUMNS, record.row, strict=True))


def test_duplicate_keys_keep_the_last_value_in_the_first_position(monkeypatch: pytest.MonkeyPatch) -> None:
    (record,) = _both_ways(
        _request(
            ("app.a", AnyValue(int_value=1)),
            ("tenant.id", AnyValue(int_value=7)),
            ("app.b", AnyValue(string_value="x")),
            ("app.a", AnyValue(string_value="last")),
            ("tenant.id", AnyValue(string_value="acme")),
            ("user.id", AnyValue(string_value="u1")),
            ("user.id", AnyValue(bool_value=False)),
        ),
        monkeypatch,
    )
    row = _row(record)
    assert row["tenant_id"] == "acme" and row["user_id"] == "false"
    assert row["attributes"] == '{"app.a":"last","app.b":"x","user.id":false}'


def test_scalar_values_of_every_width(monkeypatch: pytest.MonkeyPatch) -> None:
    attributes = [(f"app.i{i}", AnyValue(int_value=v)) for i, v in enumerate(_INTS)]
    attributes += [(f"app.s{i}", AnyValue(string_value=v)) for i, v in enumerate(_STRINGS) if "\x00" not in v]
    attributes += [("app.t", AnyValue(bool_value=True)), ("app.f", AnyValue(bool_value=False))]
    attributes += [("app.d", AnyValue(double_value=2.5)), ("k" * 200, AnyValue(string_value="long key"))]
    (record,) = _both_ways(_request(*attributes), monkeypatch)
    stored = json.loads(_row(record)["attributes"])
    assert [stored[f"app.i{i}"] for i in range(len(_INTS))] == _INTS
    assert stored["app.s10"] == "v" * 128 and stored["app.t"] is True and stored["app.f"] is False
    assert stored["app.d"] == 2.5 and stored["k" * 200] == "long key"
    assert record.repairs == []


def test_numeric_hot_columns_and_nan_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    (record,) = _both_ways(
        _request(
            ("gen_ai.usage.input_tokens", AnyValue(int_value=120)),
            ("gen_ai.usage.output_tokens", AnyValue(string_value="40")),
            ("cost.usd", AnyValue(double_value=math.nan)),
            ("quality.score", AnyValue(double_value=0.75)),
            ("http.response.status_code", AnyValue(int_value=503)),
            ("gen_ai.response.model", AnyValue(int_value=4)),
        ),
        monkeypatch,
    )
    row = _row(record)
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (120, 40, None)
    assert (row["quality_score"], row["http_status_code"], row["model"]) == (0.75, 503, "4")
    assert json.loads(row["attributes"]) == {
        "gen_ai.usage.output_tokens": "40",
        "cost.usd": "NaN",
        "gen_ai.response.model": 4,
    }
    assert "cost.usd not a finite number below 1e10: column left NULL" in record.repairs
    assert "non-finite numbers stored as strings in span attributes" in record.repairs

    (record,) = _both_ways(_request(("cost.usd", AnyValue(double_value=0.0012))), monkeypatch)
    assert _row(record)["cost_usd"] == 12_000_000  # units of 1e-10 USD: 0.0012 exactly


def test_nul_characters_in_hot_text_keys_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    (record,) = _both_ways(
        _request(
            ("user.id", AnyValue(string_value="u\x001")),
            ("app.note", AnyValue(string_value="a\x00b")),
            ("nul\x00key", AnyValue(int_value=1)),
        ),
        monkeypatch,
    )
    row = _row(record)
    assert row["user_id"] == "u1"
    assert json.loads(row["attributes"]) == {"app.note": "ab", "nulkey": 1}
    assert record.repairs == ["NUL characters removed from user.id", "NUL characters removed from span attributes"]


def test_empty_attributes_arrays_kvlists_and_unset_values(monkeypatch: pytest.MonkeyPatch) -> None:
    (record,) = _both_ways(_request(), monkeypatch)
    assert _row(record)["attributes"] == "{}"
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="x", value=AnyValue(string_value="y")))
    (record,) = _both_ways(
        _request(
            ("app.list", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="b")]))),
            ("app.map", nested),
            ("app.unset", AnyValue()),
            ("", AnyValue(string_value="empty key")),
            ("app.bytes", AnyValue(bytes_value=b"\x00\xff")),
        ),
        monkeypatch,
    )
    assert json.loads(_row(record)["attributes"]) == {
        "app.list": [1, "b"],
        "app.map": {"x": "y"},
        "app.unset": None,
        "": "empty key",
        "app.bytes": "AP8=",
    }


def test_events_with_exceptions_links_and_status(monkeypatch: pytest.MonkeyPatch) -> None:
    request = _request(("tenant.id", AnyValue(string_value="t")))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.status.code = 2
    span.status.message = "boom\x00"
    event = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano + 10)
    for key, text in (("exception.type", "ValueError"), ("exception.message", "bad"), ("app.x", "y")):
        event.attributes.append(KeyValue(key=key, value=AnyValue(string_value=text)))
    link = span.links.add(trace_id=b"\x09" * 16, span_id=b"\x08" * 8, flags=2**32 - 1)
    link.attributes.append(KeyValue(key="app.l", value=AnyValue(int_value=1)))
    (record,) = _both_ways(request, monkeypatch)
    row = _row(record)
    assert (row["status_code"], row["status_message"], row["tenant_id"]) == (2, "boom", "t")
    ((*_, ex_type, ex_message, ex_stack, ev_attrs, _dropped),) = record.events
    assert (ex_type, ex_message, ex_stack, ev_attrs) == ("ValueError", "bad", None, '{"app.x":"y"}')
    ((*_, flags, link_attrs, _),) = record.links
    assert (flags, link_attrs) == (-1, '{"app.l":1}')


def test_nesting_too_deep_fails_only_its_span(monkeypatch: pytest.MonkeyPatch) -> None:
    request = _request(("app.a", AnyValue(string_value="a")), start_time_unix_nano=0)
    spans = request.resource_spans[0].scope_spans[0].spans
    value = spans[0].attributes.add(key="deep").value
    for _ in range(1500):
        value = value.array_value.values.add()
    spans.add().CopyFrom(_request(("app.b", AnyValue(int_value=2))).resource_spans[0].scope_spans[0].spans[0])
    deep, fine = _both_ways(request, monkeypatch)
    assert deep.failure is not None and deep.failure.startswith("RecursionError")
    assert deep.repairs == ["start_time missing: set to end_time (or receive time)"]
    assert fine.failure is None and _row(fine)["attributes"] == '{"app.b":2}'


def test_cache_emptied_when_full_gives_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traces, "_KV_CACHE_MAX", 3)
    attributes = [(f"app.k{i}", AnyValue(string_value=f"v{i % 4}")) for i in range(10)]
    for _ in range(3):
        (record,) = _both_ways(_request(*attributes), monkeypatch)
        assert len(json.loads(_row(record)["attributes"])) == 10
    assert len(traces._KV_CACHE) <= 3


def _random_value(rnd: random.Random, depth: int = 0) -> AnyValue:
    kind = rnd.randrange(9)
    if kind < 3:
        return AnyValue(string_value=rnd.choice(_STRINGS))
    if kind == 3:
        return AnyValue(int_value=rnd.choice(_INTS))
    if kind == 4:
        return AnyValue(double_value=rnd.choice(_FLOATS))
    if kind == 5:
        return AnyValue(bool_value=rnd.random() < 0.5)
    if kind == 6 and depth < 2:
        return AnyValue(array_value=ArrayValue(values=[_random_value(rnd, depth + 1) for _ in range(rnd.randrange(3))]))
    if kind == 7:
        return AnyValue(bytes_value=bytes(rnd.randrange(256) for _ in range(rnd.randrange(3))))
    return AnyValue()


def test_random_hostile_spans_match_the_protobuf_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(20240607)
    for _ in range(300):
        request = _request(
            start_time_unix_nano=rnd.choice([0, 1_700_000_000_000_000_000]),
            kind=rnd.choice([0, 2, 40000]),
            dropped_attributes_count=rnd.choice([0, 2**31]),
        )
        span = request.resource_spans[0].scope_spans[0].spans[0]
        span.status.code = rnd.choice([0, 1, 2])
        span.status.message = rnd.choice(["", "m", "m\x00"])
        for _ in range(rnd.randrange(12)):
            span.attributes.append(KeyValue(key=rnd.choice(_HOT_KEYS), value=_random_value(rnd)))
        (record,) = _both_ways(request, monkeypatch)
        assert record.failure is None


def _numeric_20_10(usd: float) -> int:
    """What PostgreSQL stores in numeric(20, 10) for the decimal the client wrote, in 1e-10 USD."""
    return int(Decimal(repr(usd)).scaleb(10).to_integral_value(ROUND_HALF_UP))


@given(st.floats(min_value=-1e10, max_value=1e10, allow_nan=False, exclude_min=True, exclude_max=True))
def test_cost_units_are_the_decimal_the_client_wrote(usd: float) -> None:
    assert traces.cost_units(usd) == _numeric_20_10(usd)


@pytest.mark.parametrize(
    "usd",
    [5e-11, -5e-11, 1.5e-10, 2.5e-10, 1.23456789015, 0.30000000005, 12345678.9, 999.99999999995, 1e-4, 0.1 + 0.2],
)
def test_cost_units_ties_and_large_values(usd: float) -> None:
    # Ties at the 11th decimal round away from zero (as PostgreSQL does); above 1,000 USD the double product is
    # not exact enough and the Decimal path answers.
    assert traces.cost_units(usd) == _numeric_20_10(usd)


def test_attribute_columns_sit_between_operation_and_attributes_and_are_documented() -> None:
    from pathlib import Path

    from collector.exporters.postgres.span_columns import ATTRIBUTE_COLUMNS, span_position

    first = span_position("operation") + 1
    assert _COLUMNS[first : first + len(ATTRIBUTE_COLUMNS)] == [c.name for c in ATTRIBUTE_COLUMNS]
    assert _COLUMNS[first + len(ATTRIBUTE_COLUMNS)] == "attributes"
    schema = (Path(__file__).parents[4] / "docs" / "schema.md").read_text()
    for column in ATTRIBUTE_COLUMNS:
        assert all(f"`{key}`" in schema for key in column.keys), column
        assert set(column.moves) <= set(column.keys), column
        assert column.convert is not None or len(column.keys) == 1, column  # a text column reads one key


def test_the_first_key_with_a_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    (record,) = _both_ways(
        _request(
            ("http.response.status_code", AnyValue()),
            ("http.status_code", AnyValue(int_value=404)),
            ("gen_ai.response.model", AnyValue()),
            ("gen_ai.request.model", AnyValue(string_value="m-1")),
        ),
        monkeypatch,
    )
    row = _row(record)
    assert (row["http_status_code"], row["model"]) == (404, "m-1")
    assert json.loads(row["attributes"]) == {
        "http.response.status_code": None,
        "http.status_code": 404,
        "gen_ai.response.model": None,
        "gen_ai.request.model": "m-1",
    }

"""Span rows from the one-pass attribute reader: the same columns and jsonb as a dict of the attributes would give.

The reader fills hot columns while iterating (no intermediate dict, no WhichOneof for non-empty strings) and encodes
jsonb with one reused C encoder; these pin the cases that shortcut could get wrong: duplicate keys (last wins),
hot keys with non-string values, empty strings, repairs.
"""

from __future__ import annotations

import json
import math

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.exporters.postgres import traces
from collector.exporters.postgres._values import dumps, to_json

_COLUMNS = [c for c, _ in traces.SPAN_COLUMNS]


def _row(*attributes: tuple[str, AnyValue]) -> tuple[dict[str, object], traces.SpanRecord]:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    span.name = "svc.op"
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
    for key, value in attributes:
        span.attributes.append(KeyValue(key=key, value=value))
    (record,) = traces.span_records(request)
    assert record.failure is None
    return dict(zip(_COLUMNS, record.row, strict=True)), record


def test_duplicate_hot_key_last_value_wins() -> None:
    row, _ = _row(("tenant.id", AnyValue(int_value=7)), ("tenant.id", AnyValue(string_value="acme")))
    assert row["tenant_id"] == "acme"
    assert json.loads(str(row["attributes"])) == {}

    row, _ = _row(("tenant.id", AnyValue(string_value="acme")), ("tenant.id", AnyValue(int_value=7)))
    assert row["tenant_id"] == "7"
    assert json.loads(str(row["attributes"])) == {"tenant.id": 7}


def test_hot_text_attributes_and_empty_strings() -> None:
    row, _ = _row(
        ("correlation.id", AnyValue(string_value="")),
        ("http.route", AnyValue(string_value="/v1/plan")),
        ("error.type", AnyValue(bool_value=True)),
        ("app.note", AnyValue(string_value="")),
        ("app.step", AnyValue(int_value=3)),
    )
    assert row["correlation_id"] == ""  # an empty string is a string: column, not jsonb
    assert row["http_route"] == "/v1/plan"
    assert row["error_type"] == "true"  # best conversion; the attribute stays
    assert json.loads(str(row["attributes"])) == {"error.type": True, "app.note": "", "app.step": 3}


def test_numeric_hot_columns_lossless_or_kept() -> None:
    row, record = _row(
        ("gen_ai.usage.input_tokens", AnyValue(int_value=120)),
        ("gen_ai.usage.output_tokens", AnyValue(string_value="40")),
        ("cost.usd", AnyValue(double_value=0.0012)),
        ("quality.score", AnyValue(double_value=math.nan)),
    )
    assert row["input_tokens"] == 120
    assert row["output_tokens"] == 40
    assert row["cost_usd"] == 12_000_000  # 1e-10 USD units: exactly 0.0012
    assert row["quality_score"] is None
    assert json.loads(str(row["attributes"])) == {"gen_ai.usage.output_tokens": "40", "quality.score": "NaN"}
    assert any("quality.score" in r for r in record.repairs)


def test_nul_in_hot_text_is_stripped_and_recorded() -> None:
    row, record = _row(("user.id", AnyValue(string_value="u\x001")))
    assert row["user_id"] == "u1"
    assert any("NUL" in r for r in record.repairs)


def test_reused_encoder_matches_json_and_repairs() -> None:
    value = {"a": [1, 2.5, "é", None, True], "b": {"c": "x"}}
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert dumps({101: 1}) == '{"101":1}'
    repairs: list[str] = []
    assert json.loads(to_json({"x": math.inf, "y": "a\x00b"}, "f", repairs)) == {"x": "Infinity", "y": "ab"}
    assert repairs == ["non-finite numbers stored as strings in f"]
    repairs = []
    assert json.loads(to_json({"y": "a\x00b"}, "f", repairs)) == {"y": "ab"}
    assert repairs == ["NUL characters removed from f"]

"""OTLP/JSON bodies decoded an item at a time (``piece=0``): the same messages and the same refusals as decoding
whole, with the failing item named."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.pdata import PIECE_CHARS, JSONError, from_json

SPAN = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /"}


def _traces(body: object, piece: int = 0) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    from_json(json.dumps(body), request, piece)
    return request


def _spans(*names: str) -> dict[str, object]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [dict(SPAN, name=n) for n in names]}]}]}


def test_a_large_body_is_decoded_in_pieces_by_default_to_the_same_message() -> None:
    names = [f"op-{i}" for i in range(PIECE_CHARS // 40)]
    body = json.dumps(_spans(*names)).encode()
    assert len(body) > PIECE_CHARS
    request = from_json(body, ExportTraceServiceRequest())
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == names
    assert request == from_json(body, ExportTraceServiceRequest(), len(body))


def test_the_skeleton_around_items_is_kept() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
                "scope_spans": [{"scope": {"name": "lib"}, "spans": [SPAN]}],
                "unknownField": {"spans": [1, 2]},
            }
        ]
    }
    request = _traces(body)
    assert request == _traces(body, piece=10**9)
    entry = request.resource_spans[0]
    assert entry.resource.attributes[0].value.string_value == "api"
    assert entry.schema_url.endswith("1.26.0")
    assert entry.scope_spans[0].scope.name == "lib"
    assert entry.scope_spans[0].spans[0].span_id == bytes.fromhex("cd" * 8)


def test_a_field_given_twice_or_under_both_names_keeps_its_last_value_as_json_loads_does() -> None:
    twice = '{"resourceSpans": [{"scopeSpans": [{"spans": [%s]}], "scopeSpans": [{"spans": []}]}]}'
    text = twice % json.dumps(SPAN)
    for piece in (0, 10**9):
        request = from_json(text, ExportTraceServiceRequest(), piece)
        assert len(request.resource_spans[0].scope_spans) == 1
        assert len(request.resource_spans[0].scope_spans[0].spans) == 0
    both = {"resourceSpans": [{"scope_spans": [{"spans": [SPAN]}], "scopeSpans": None}]}
    assert _traces(both) == _traces(both, piece=10**9)
    assert len(_traces(both).resource_spans[0].scope_spans) == 0


def test_a_metric_with_two_kinds_of_data_is_refused_as_json_format_refuses_it() -> None:
    point = {"asInt": "3", "timeUnixNano": "1"}
    metric = {"name": "m", "gauge": {"dataPoints": [point]}, "sum": {"dataPoints": [point]}}
    body = json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]})
    for piece in (0, 10**9):
        with pytest.raises(JSONError, match=r"oneof|more than one"):
            from_json(body, ExportMetricsServiceRequest(), piece)
    metric.pop("sum")
    request = from_json(
        body.replace(', "sum": {"dataPoints": [{"asInt": "3", "timeUnixNano": "1"}]}', ""),
        ExportMetricsServiceRequest(),
        0,
    )
    assert request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_int == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "a"}, ', "invalid JSON: Expecting value"),
        ('{"resourceSpans": []} {}', "invalid JSON: Extra data"),
        ('{"resourceSpans": [] "x": 1}', "invalid JSON: Expecting ',' delimiter"),
        ('{"resourceSpans" []}', "invalid JSON: Expecting ':' delimiter"),
        ("{resourceSpans: []}", "invalid JSON: Expecting property name"),
        ("[1, 2]", "expected a JSON object"),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}',
            r"resourceSpans\[0\].scopeSpans\[0\].spans\[0\]: expected an object",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "a"}, {"traceId": "zz"}]}]}]}',
            r"resourceSpans\[0\].scopeSpans\[0\].spans\[1\].traceId: expected a hex id",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "a", "startTimeUnixNano": "soon"}]}]}]}',
            r"invalid OTLP/JSON at resourceSpans\[0\].scopeSpans\[0\].spans\[0\]",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": ' + "[" * 10_000 + "]" * 10_000 + "}]}]}]}",
            "nested too deeply",
        ),
        ('{"resourceSpans": 5}', "invalid OTLP/JSON"),
    ],
)
def test_a_bad_body_is_a_json_error_naming_where(text: str, message: str) -> None:
    with pytest.raises(JSONError, match=message):
        from_json(text, ExportTraceServiceRequest(), 0)
    with pytest.raises(JSONError):
        from_json(text, ExportTraceServiceRequest(), len(text))

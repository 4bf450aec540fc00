"""OTLP/JSON written by the collector (otlphttp with encoding: json, JSON responses) uses integer enums."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from processors.pdata import to_json


def test_enums_are_integers_and_ids_hex() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes(range(16))
    span.span_id = bytes(range(8))
    span.kind = Span.SPAN_KIND_SERVER
    span.status.code = Status.STATUS_CODE_ERROR
    out = json.loads(to_json(request))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["kind"] == 2
    assert out["status"]["code"] == 2
    assert out["traceId"] == bytes(range(16)).hex()
    assert out["spanId"] == bytes(range(8)).hex()

"""``drop_bad_ids``: spans and log records with ids of the wrong length leave the request, the rest stay in order."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.pdata import drop_bad_ids
from processors.pipeline import Signal


def test_a_request_half_made_of_bad_ids_keeps_every_good_span_in_order() -> None:
    """20,000 spans, every other one with a 1-byte trace id. The bad ones are removed by position: removing them by
    message equality compared every span with every bad one (quadratic: minutes for a request this size)."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(20_000):
        good = i % 2 == 0
        spans.add(trace_id=bytes(16) if good else b"x", span_id=(i + 1).to_bytes(8, "big"), name=f"s{i}")
    removed, reason = drop_bad_ids(Signal.TRACES, request)
    assert removed == 10_000
    assert reason == "span 's1': trace_id must be 16 bytes and span_id 8 bytes (got 1 and 8)"
    assert [s.name for s in spans] == [f"s{i}" for i in range(0, 20_000, 2)]


def test_parent_ids_and_log_ids_are_checked_as_the_spec_allows() -> None:
    traces = ExportTraceServiceRequest()
    spans = traces.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=bytes(16), span_id=bytes(8), name="root")
    spans.add(trace_id=bytes(16), span_id=bytes(8), parent_span_id=bytes(8), name="child")
    spans.add(trace_id=bytes(16), span_id=bytes(8), parent_span_id=bytes(3), name="bad parent")
    spans.add(trace_id=bytes(16), span_id=bytes(7), name="bad span id")
    assert drop_bad_ids(Signal.TRACES, traces)[0] == 2
    assert [s.name for s in spans] == ["root", "child"]

    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.add(severity_text="no ids")
    records.add(severity_text="both", trace_id=bytes(16), span_id=bytes(8))
    records.add(severity_text="bad", trace_id=bytes(15))
    removed, reason = drop_bad_ids(Signal.LOGS, logs)
    assert removed == 1 and "log record" in reason
    assert [r.severity_text for r in records] == ["no ids", "both"]

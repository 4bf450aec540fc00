"""Every signal round-trips: what the official OTel SDK's OTLP encoders produce is what the tables hold."""

from __future__ import annotations

import json
import logging
import time

import psycopg
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer

from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal
from tests.support.sink_otlp import encode_logs, encode_metrics, make_spans, traces_request


def _build_agent_spans(tracer: Tracer) -> None:
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/pay")
        root.set_attribute("http.response.status_code", 502)
    with tracer.start_as_current_span(
        "checkout.plan",
        kind=SpanKind.INTERNAL,
        links=[Link(root.get_span_context(), {"link.why": "follows"})],
        attributes={
            "correlation.id": "req-42",
            "tenant.id": "acme",
            "user.id": "u1",
            "session.id": "s1",
            "gen_ai.agent.name": "planner",
            "agent.role": "planning",
            "feature.name": "checkout",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "cost.usd": 0.0123,
            "quality.score": 0.9,
            "error.type": "ValueError",
            "custom.list": [1, 2, 3],
            "custom.flag": True,
        },
    ) as span:
        span.add_event("thinking", {"step": 1})
        try:
            raise ValueError("bad plan")
        except ValueError as exc:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, "plan failed"))


def test_spans_round_trip(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    spans = make_spans(_build_agent_spans, service="agents", **{"deployment.environment": "test"})
    request = traces_request(spans)
    result = PostgresWriter(pg_dsn).write(Signal.TRACES, request)
    assert (result.items, result.inserted, result.quarantined) == (2, 2, 0)

    sent = {s.context.span_id.to_bytes(8, "big"): s for s in spans}
    rows = pg_conn.execute(
        "SELECT span_id, trace_id, parent_span_id, start_time, end_time, duration_ms, name, kind,"
        " status_code, status_message, service_name, scope_name, scope_version, operation, attributes,"
        " resource_attributes,"
        " extract(epoch from start_time)::numeric * 1000000 FROM spans"
    ).fetchall()
    assert len(rows) == 2
    for row in rows:
        span = sent[row[0]]
        assert span.start_time is not None and span.end_time is not None
        assert row[1] == span.context.trace_id.to_bytes(16, "big")
        assert row[2] == (span.parent.span_id.to_bytes(8, "big") if span.parent else None)
        assert int(row[16]) == span.start_time // 1000  # µs precision
        assert abs(row[5] - (span.end_time - span.start_time) / 1e6) < 1e-9
        assert row[6] == span.name == row[13]
        assert row[7] == span.kind.value + 1  # SDK SpanKind -> OTLP enum
        assert row[10] == "agents"
        assert (row[11], row[12]) == ("tests.sink", "1.2.3")
        assert row[15]["deployment.environment"] == "test"
        assert row[15]["service.name"] == "agents"

    hot = pg_conn.execute(
        "SELECT correlation_id, tenant_id, user_id, session_id, agent_name, agent_role, feature, model,"
        " provider,"
        " input_tokens, output_tokens, cost_usd, quality_score, error_type, status_code, status_message,"
        " attributes FROM spans WHERE name = 'checkout.plan'"
    ).fetchone()
    assert hot is not None
    assert hot[:11] == (
        "req-42",
        "acme",
        "u1",
        "s1",
        "planner",
        "planning",
        "checkout",
        "gpt-4o-2024",
        "openai",
        1200,
        300,
    )
    assert float(hot[11]) == 0.0123 and hot[12] == 0.9 and hot[13] == "ValueError"
    assert (hot[14], hot[15]) == (2, "plan failed")
    # Extracted attributes leave the jsonb; the rest (and model fallbacks) stay.
    assert hot[16] == {
        "custom.list": [1, 2, 3],
        "custom.flag": True,
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024",
        "gen_ai.provider.name": "openai",
    }
    root = pg_conn.execute("SELECT http_route, http_status_code, kind, attributes FROM spans WHERE name = 'root'")
    assert root.fetchone() == ("/pay", 502, 2, {})

    events = pg_conn.execute(
        "SELECT event_index, name, exception_type, exception_message, exception_stacktrace, attributes"
        " FROM span_events ORDER BY event_index"
    ).fetchall()
    assert [(e[0], e[1]) for e in events] == [(0, "thinking"), (1, "exception")]
    assert events[0][5] == {"step": 1}
    assert events[1][2:4] == ("ValueError", "bad plan")
    assert "raise ValueError" in events[1][4]
    link = pg_conn.execute("SELECT linked_trace_id, linked_span_id, attributes FROM span_links").fetchone()
    root_span = next(s for s in spans if s.name == "root")
    assert link == (
        root_span.context.trace_id.to_bytes(16, "big"),
        root_span.context.span_id.to_bytes(8, "big"),
        {"link.why": "follows"},
    )


def test_metrics_round_trip_all_point_kinds(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "billing"}),
        metric_readers=[reader],
        views=[View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("tests.sink", "0.1")
    meter.create_counter("calls", unit="{call}").add(3, {"route": "/a"})
    meter.create_up_down_counter("inflight").add(-2, {"route": "/a"})
    hist = meter.create_histogram("latency", unit="ms")
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tests.sink")
    with tracer.start_as_current_span("request") as span:  # a sampled span: the SDK attaches exemplars
        for v in (1.0, 5.0, 50.0):
            hist.record(v, {"route": "/a"})
    trace_hex = format(span.get_span_context().trace_id, "032x")
    exp = meter.create_histogram("latency.exp", unit="ms")
    for v in (1.0, 2.0, 4.0):
        exp.record(v)
    meter.create_observable_gauge("temperature", callbacks=[lambda _o: [_gauge(21.5)]])
    data = reader.get_metrics_data()
    assert data is not None
    request = encode_metrics(data)
    # The SDK has no summary instrument; add one by hand (what e.g. Prometheus receivers produce).
    summary = request.resource_metrics[0].scope_metrics[0].metrics.add(name="rpc.summary", unit="s")
    point = summary.summary.data_points.add(time_unix_nano=time.time_ns(), count=4, sum=2.0)
    point.quantile_values.add(quantile=0.5, value=0.4)
    point.quantile_values.add(quantile=0.99, value=0.9)

    result = PostgresWriter(pg_dsn).write(Signal.METRICS, request)
    assert result.inserted == result.items == 6
    rows = {
        r[0]: r
        for r in pg_conn.execute(
            "SELECT metric_name, metric_type, value, value_int, count, sum, min, max, bucket_counts,"
            " explicit_bounds, scale, positive_bucket_counts, quantile_values, attributes, temporality,"
            " is_monotonic, unit, service_name FROM metric_points"
        ).fetchall()
    }
    assert rows["calls"][1:4] == ("sum", 3.0, 3)
    assert rows["calls"][13] == {"route": "/a"} and rows["calls"][15] is True and rows["calls"][16] == "{call}"
    assert rows["inflight"][3] == -2 and rows["inflight"][15] is False
    lat = rows["latency"]
    assert lat[1] == "histogram" and lat[4] == 3 and lat[5] == 56.0 and (lat[6], lat[7]) == (1.0, 50.0)
    assert sum(lat[8]) == 3 and len(lat[8]) == len(lat[9]) + 1
    exemplars = pg_conn.execute("SELECT exemplars FROM metric_points WHERE metric_name = 'latency'").fetchone()
    assert exemplars is not None and exemplars[0], "the SDK sent exemplars"
    assert {e["trace_id"] for e in exemplars[0]} == {trace_hex}
    assert {e["value"] for e in exemplars[0]} <= {1.0, 5.0, 50.0}
    e = rows["latency.exp"]
    assert e[1] == "exponential_histogram" and e[4] == 3 and e[10] is not None and sum(e[11]) == 3
    assert rows["temperature"][1:3] == ("gauge", 21.5)
    assert rows["rpc.summary"][12] == [{"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": 0.9}]
    assert {r[17] for r in rows.values()} == {"billing"}


def _gauge(value: float) -> Observation:
    return Observation(value, {"room": "lab"})


def test_logs_round_trip(pg_dsn: str, pg_conn: psycopg.Connection) -> None:
    import logging

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "api"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    from opentelemetry.sdk._logs import LoggingHandler

    logger = logging.getLogger("tests.sink.roundtrip")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=provider))
    spans = make_spans(lambda t: _log_in_span(t, logger))
    logger.warning("plain %s", "text", extra={"correlation.id": "c-9", "tenant.id": "t1"})
    provider.shutdown()
    records = exporter.get_finished_logs()
    request = encode_logs(records)
    result = PostgresWriter(pg_dsn).write(Signal.LOGS, request)
    assert result.inserted == 2
    rows = pg_conn.execute(
        "SELECT body, severity_number, severity_text, trace_id, span_id, correlation_id, attributes,"
        " service_name"
        " FROM logs ORDER BY time"
    ).fetchall()
    assert rows[0][0] == "inside span" and rows[0][1] == 9 and rows[0][2] == "INFO"
    span = spans[0]
    assert rows[0][3] == span.context.trace_id.to_bytes(16, "big")
    assert rows[0][4] == span.context.span_id.to_bytes(8, "big")
    assert rows[1][0] == "plain text" and rows[1][1] == 13 and rows[1][5] == "c-9"
    assert rows[1][6]["tenant.id"] == "t1" and rows[1][7] == "api"
    assert json.dumps(rows[1][6])  # valid JSON object


def _log_in_span(tracer: Tracer, logger: logging.Logger) -> None:
    with tracer.start_as_current_span("work"):
        logger.setLevel("INFO")
        logger.info("inside span")

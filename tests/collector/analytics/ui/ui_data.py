"""Data for the UI tests, written through the sink's real writer (spans, events, rollups as in production): one
request that crossed two services (agent-service -> tools-service) with LLM calls, an exception and a retry trace
sharing its correlation id, an unpriced call, and background traffic for search and paging."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from collector.exporters.postgres.writer import PostgresWriter
from processors.pipeline import Signal

CORRELATION = "req-checkout-42"
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"  # the request: both services
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4737"  # its retry (same correlation id)
COST_A = 0.0123 + 0.0007
BACKGROUND = 60
SERVICES = ("agent-service", "tools-service")


def _kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=value))


@dataclass
class Spec:
    service: str
    trace_id: str
    span_id: int
    parent: int | None
    name: str
    kind: int
    start: datetime
    ms: float
    attrs: Mapping[str, str | int | float] = field(default_factory=dict)
    error: str | None = None  # exception message
    trace_state: str = ""  # W3C tracestate (e.g. a sampler's ``ot=th:…``)


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def otlp_request(specs: list[Spec]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scopes: dict[str, ScopeSpans] = {}
    for s in specs:
        ss = scopes.get(s.service)
        if ss is None:
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(
                [_kv("service.name", s.service), _kv("service.version", "1.4.2"), _kv("deployment.environment", "demo")]
            )
            ss = rs.scope_spans.add()
            ss.scope.name = "tests.ui"
            scopes[s.service] = ss
        span = ss.spans.add()
        span.trace_id = bytes.fromhex(s.trace_id)
        span.span_id = s.span_id.to_bytes(8, "big")
        if s.parent is not None:
            span.parent_span_id = s.parent.to_bytes(8, "big")
        span.name = s.name
        span.trace_state = s.trace_state
        span.kind = Span.SpanKind.ValueType(s.kind)
        span.start_time_unix_nano = _ns(s.start)
        span.end_time_unix_nano = _ns(s.start + timedelta(milliseconds=s.ms))
        span.attributes.extend(_kv(k, v) for k, v in s.attrs.items())
        if s.error is not None:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = s.error
            event = span.events.add()
            event.name = "exception"
            event.time_unix_nano = _ns(s.start + timedelta(milliseconds=s.ms / 2))
            event.attributes.extend(
                [
                    _kv("exception.type", "TimeoutError"),
                    _kv("exception.message", s.error),
                    _kv("exception.stacktrace", 'Traceback (most recent call last):\n  File "search.py", line 7'),
                ]
            )
    return request


def _llm(model: str, inp: int, out: int, cost: float | None) -> dict[str, str | int | float]:
    attrs: dict[str, str | int | float] = {
        "gen_ai.request.model": model,
        "gen_ai.provider.name": "openai" if model.startswith("gpt") else "local",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
    }
    if cost is not None:
        attrs["cost.usd"] = cost
    return attrs


def request_specs(now: datetime) -> list[Spec]:
    """The two-service request (trace A) and its retry (trace B)."""
    t0 = now - timedelta(minutes=20)
    common = {"correlation.id": CORRELATION, "tenant.id": "acme", "user.id": "alice"}
    a = TRACE_A
    return [
        Spec(
            "agent-service",
            a,
            1,
            None,
            "POST /v1/query",
            2,
            t0,
            480.0,
            {**common, "http.route": "/v1/query", "http.response.status_code": 200, "gen_ai.agent.name": "planner"},
        ),
        Spec("agent-service", a, 2, 1, "agent.plan", 1, t0 + timedelta(milliseconds=5), 460.0, dict(common)),
        Spec(
            "agent-service",
            a,
            3,
            2,
            "llm.chat",
            3,
            t0 + timedelta(milliseconds=10),
            210.0,
            {**common, **_llm("gpt-4o", 1200, 300, 0.0123)},
        ),
        Spec("agent-service", a, 4, 2, "GET /v1/search", 3, t0 + timedelta(milliseconds=230), 220.0, dict(common)),
        Spec(
            "tools-service",
            a,
            5,
            4,
            "GET /v1/search",
            2,
            t0 + timedelta(milliseconds=235),
            200.0,
            {**common, "http.route": "/v1/search"},
            error="search backend timed out",
        ),
        Spec(
            "tools-service",
            a,
            6,
            5,
            "llm.chat",
            3,
            t0 + timedelta(milliseconds=240),
            90.0,
            {**common, **_llm("gpt-4o-mini", 900, 120, 0.0007)},
        ),
        Spec(
            "agent-service",
            TRACE_B,
            11,
            None,
            "POST /v1/query",
            2,
            t0 + timedelta(seconds=2),
            150.0,
            {**common, "http.route": "/v1/query"},
        ),
        Spec(
            "agent-service",
            TRACE_B,
            12,
            11,
            "llm.chat",
            3,
            t0 + timedelta(seconds=2, milliseconds=5),
            120.0,
            {**common, **_llm("gpt-4o", 100, 40, 0.001)},
        ),
    ]


def background_specs(now: datetime) -> list[Spec]:
    specs = []
    for i in range(BACKGROUND):
        trace = f"{0xA0000000 + i:08x}" + "0" * 23 + "1"
        start = now - timedelta(minutes=50) + timedelta(seconds=30 * i)
        tenant = ("acme", "globex", "initech")[i % 3]
        attrs: dict[str, str | int | float] = {
            "correlation.id": f"bg-{i:03d}",
            "tenant.id": tenant,
            "user.id": f"user{i % 4}",
        }
        root_ms = 40.0 + 7 * i
        specs.append(
            Spec(
                SERVICES[i % 2],
                trace,
                100 + i,
                None,
                "GET /v1/health" if i % 2 else "POST /v1/query",
                2,
                start,
                root_ms,
                attrs,
                error="boom" if i % 10 == 3 else None,
            )
        )
        model, cost = ("local-llama", None) if i % 15 == 0 else ("gpt-4o-mini", round(0.0001 * (i + 1), 6))
        specs.append(
            Spec(
                SERVICES[i % 2],
                trace,
                1000 + i,
                100 + i,
                "llm.chat",
                3,
                start + timedelta(milliseconds=2),
                root_ms / 2,
                {**attrs, **_llm(model, 50 + i, 10, cost)},
            )
        )
    return specs


def load(dsn: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    writer = PostgresWriter(dsn)
    try:
        for specs in (request_specs(now), background_specs(now)):
            result = writer.write(Signal.TRACES, otlp_request(specs))
            assert result.quarantined == 0, result.quarantine_reasons
    finally:
        writer.close()
    return now


def wide_trace_specs(spans: int, now: datetime, trace_id: str = "5" * 32) -> list[Spec]:
    """One trace of ``spans`` spans over two services: a root, 50 workers, the rest spread under them."""
    start = now - timedelta(minutes=5)
    out = [Spec("agent-service", trace_id, 1, None, "POST /v1/batch", 2, start, 5000.0, {"correlation.id": "wide"})]
    workers = min(50, spans - 1)
    for w in range(workers):
        out.append(
            Spec(
                SERVICES[w % 2],
                trace_id,
                2 + w,
                1,
                f"worker.{w}",
                1,
                start + timedelta(milliseconds=w * 90),
                400.0,
                {"correlation.id": "wide"},
            )
        )
    for i in range(spans - 1 - workers):
        parent = 2 + i % workers
        offset = (parent - 2) * 90 + (i // workers) % 390
        out.append(
            Spec(
                SERVICES[parent % 2],
                trace_id,
                1000 + i,
                parent,
                "db.query",
                3,
                start + timedelta(milliseconds=offset),
                1.0 + i % 7,
                {"correlation.id": "wide", "db.system": "postgresql"},
            )
        )
    return out


def write_specs(dsn: str, specs: list[Spec]) -> None:
    writer = PostgresWriter(dsn)
    try:
        result = writer.write(Signal.TRACES, otlp_request(specs))
        assert result.quarantined == 0, result.quarantine_reasons
    finally:
        writer.close()


def load_wide_trace(dsn: str, spans: int, now: datetime | None = None) -> str:
    specs = wide_trace_specs(spans, now or datetime.now(UTC))
    write_specs(dsn, specs)
    return specs[0].trace_id


OLD_CORRELATION = "req-last-week"
OLD_TRACE = "6" * 32
OLD_COST = 2.5


def old_request_specs(now: datetime) -> list[Spec]:
    """A request of three days ago, pricier than any of today's: a SERVER root and one priced LLM call."""
    t0 = now - timedelta(days=3)
    common = {"correlation.id": OLD_CORRELATION, "tenant.id": "acme"}
    return [
        Spec("agent-service", OLD_TRACE, 1, None, "POST /v1/query", 2, t0, 900.0, dict(common)),
        Spec(
            "agent-service",
            OLD_TRACE,
            2,
            1,
            "llm.chat",
            3,
            t0 + timedelta(milliseconds=10),
            800.0,
            {**common, **_llm("gpt-4o", 90_000, 20_000, OLD_COST)},
        ),
    ]

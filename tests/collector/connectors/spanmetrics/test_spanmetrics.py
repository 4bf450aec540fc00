"""spanmetrics from real SDK spans (encode_spans), into a list consumer and the real prometheus exporter."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.component import ComponentID, CreateSettings, Request, Signal
from collector.connectors.spanmetrics import SpanMetricsConfig, SpanMetricsConnector, factories
from collector.connectors.spanmetrics.config import (
    DELTA,
    Dimension,
    ExemplarsConfig,
    ExplicitHistogramConfig,
    ExponentialHistogramConfig,
    HistogramConfig,
)
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.prometheus import PrometheusExporterConfig
from collector.exporters.prometheus.exporter import PrometheusExporter
from processors.pipeline import INLINE_ITEMS, Duration, RefusedError

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


class Collected:
    """The metrics pipeline's end: keeps what the connector emits."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        assert signal is Signal.METRICS
        assert isinstance(request, ExportMetricsServiceRequest)
        self.requests.append(request)


def spans(resource: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    """checkout: 3 GET /pay server spans (5, 30, 300 ms; one error) and one client span with http.method."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create(resource or {"service.name": "checkout"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tp.get_tracer("app")
    for i, ms in enumerate((5, 30, 300)):
        span = tracer.start_span("GET /pay", kind=SpanKind.SERVER, start_time=T0 + i * 1000 * MS)
        if i == 2:
            span.set_status(Status(StatusCode.ERROR))
            span.add_event("exception", {"exception.type": "Timeout"})
        span.end(end_time=T0 + i * 1000 * MS + ms * MS)
    client = tracer.start_span("charge", kind=SpanKind.CLIENT, start_time=T0, attributes={"http.method": "POST"})
    client.end(end_time=T0 + 12 * MS)
    return encode_spans(exporter.get_finished_spans())


def connector(config: SpanMetricsConfig, consumer: object) -> SpanMetricsConnector:
    return SpanMetricsConnector(CreateSettings(ComponentID("spanmetrics"), Signal.TRACES), config, consumer)  # type: ignore[arg-type]


def attrs(dp: NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in dp.attributes:
        kind = kv.value.WhichOneof("value")
        assert kind is not None, f"attribute {kv.key} has no value"
        out[kv.key] = getattr(kv.value, kind)
    return out


def metrics_by_name(request: ExportMetricsServiceRequest) -> dict[str, Metric]:
    return {m.name: m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_factory_routes_traces_to_metrics_and_validates() -> None:
    (factory,) = factories
    assert factory.type == "spanmetrics"
    assert factory.routes == frozenset({(Signal.TRACES, Signal.METRICS)})
    assert SpanMetricsConfig().validate() == []
    bad = SpanMetricsConfig(
        aggregation_temporality="DELTA",
        histogram=HistogramConfig(
            unit="us", explicit=ExplicitHistogramConfig(), exponential=ExponentialHistogramConfig()
        ),
        dimensions=[Dimension("a"), Dimension("a")],
    ).validate()
    assert any(e.startswith("aggregation_temporality:") for e in bad)
    assert any(e.startswith("histogram.unit:") for e in bad)
    assert any(e.startswith("histogram: use either") for e in bad)
    assert any(e.startswith("dimensions[1].name: duplicate") for e in bad)


def test_calls_and_duration_with_default_buckets() -> None:
    out = Collected()
    c = connector(SpanMetricsConfig(), out)
    asyncio.run(c.consume(Signal.TRACES, spans()))
    asyncio.run(c.flush())
    (request,) = out.requests
    metrics = metrics_by_name(request)
    calls, duration = metrics["traces.span.metrics.calls"], metrics["traces.span.metrics.duration"]
    assert calls.sum.is_monotonic and calls.sum.aggregation_temporality == 2  # cumulative
    by_dims = {
        (a["span.name"], a["span.kind"], a["status.code"]): dp.as_int
        for dp in calls.sum.data_points
        for a in [attrs(dp)]
    }
    assert by_dims == {
        ("GET /pay", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"): 2,
        ("GET /pay", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR"): 1,
        ("charge", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET"): 1,
    }
    assert all(attrs(dp)["service.name"] == "checkout" for dp in calls.sum.data_points)
    assert duration.unit == "ms"
    ok = next(
        dp
        for dp in duration.histogram.data_points
        if attrs(dp)["status.code"] == "STATUS_CODE_UNSET" and attrs(dp)["span.name"] == "GET /pay"
    )
    assert list(ok.explicit_bounds)[:6] == [2, 4, 6, 8, 10, 50]
    assert ok.count == 2 and ok.sum == 35
    # 5 ms falls in (4, 6], 30 ms in (10, 50]
    assert ok.bucket_counts[2] == 1 and ok.bucket_counts[5] == 1 and sum(ok.bucket_counts) == 2
    assert request.resource_metrics[0].scope_metrics[0].scope.name == "spanmetricsconnector"


def test_cumulative_keeps_counting_and_delta_resets() -> None:
    cumulative, delta = Collected(), Collected()
    cc = connector(SpanMetricsConfig(), cumulative)
    dc = connector(SpanMetricsConfig(aggregation_temporality=DELTA), delta)
    for c in (cc, dc):
        for _ in range(2):
            asyncio.run(c.consume(Signal.TRACES, spans()))
            asyncio.run(c.flush())
        asyncio.run(c.flush())  # nothing new
    totals = [
        sum(dp.as_int for dp in metrics_by_name(r)["traces.span.metrics.calls"].sum.data_points)
        for r in cumulative.requests
    ]
    assert totals == [4, 8, 8]
    assert len(delta.requests) == 2  # the empty third flush emits nothing
    for r in delta.requests:
        m = metrics_by_name(r)["traces.span.metrics.calls"]
        assert m.sum.aggregation_temporality == 1
        assert sum(dp.as_int for dp in m.sum.data_points) == 4


def test_dimensions_defaults_exclusions_seconds_and_exemplars() -> None:
    out = Collected()
    cfg = SpanMetricsConfig(
        dimensions=[Dimension("http.method", default="GET"), Dimension("absent.attr")],
        exclude_dimensions=["status.code"],
        histogram=HistogramConfig(unit="s", explicit=ExplicitHistogramConfig(buckets=[0.01, 0.1, 1.0])),  # type: ignore[list-item]
        exemplars=ExemplarsConfig(enabled=True, max_per_data_point=2),
        namespace="red",
    )
    c = connector(cfg, out)
    request = spans()
    trace_ids = {s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
    asyncio.run(c.consume(Signal.TRACES, request))
    asyncio.run(c.flush())
    metrics = metrics_by_name(out.requests[0])
    calls = metrics["red.calls"]
    methods = {attrs(dp)["span.name"]: attrs(dp) for dp in calls.sum.data_points}
    assert methods["charge"]["http.method"] == "POST" and methods["GET /pay"]["http.method"] == "GET"
    assert all("status.code" not in a and "absent.attr" not in a for a in methods.values())
    pay = next(dp for dp in calls.sum.data_points if attrs(dp)["span.name"] == "GET /pay")
    assert pay.as_int == 3 and len(pay.exemplars) == 2  # bounded per data point
    duration = metrics["red.duration"]
    assert duration.unit == "s"
    hist = next(dp for dp in duration.histogram.data_points if attrs(dp)["span.name"] == "GET /pay")
    assert list(hist.bucket_counts) == [1, 1, 1, 0]  # 5 ms, 30 ms, 300 ms
    assert all(e.trace_id in trace_ids and len(e.span_id) == 8 for e in hist.exemplars)
    assert abs(hist.sum - 0.335) < 1e-9


def test_exponential_histogram_counts() -> None:
    out = Collected()
    c = connector(SpanMetricsConfig(histogram=HistogramConfig(exponential=ExponentialHistogramConfig(max_size=8))), out)
    asyncio.run(c.consume(Signal.TRACES, spans()))
    asyncio.run(c.flush())
    dps = metrics_by_name(out.requests[0])["traces.span.metrics.duration"].exponential_histogram.data_points
    pay = next(
        dp for dp in dps if attrs(dp)["span.name"] == "GET /pay" and attrs(dp)["status.code"] == "STATUS_CODE_UNSET"
    )
    assert pay.count == 2 and sum(pay.positive.bucket_counts) == 2
    assert len(pay.positive.bucket_counts) <= 8
    base = 2 ** (2**-pay.scale)
    # each value lies in (base**i, base**(i+1)] of its bucket
    indices = [pay.positive.offset + i for i, n in enumerate(pay.positive.bucket_counts) if n]
    for value, index in zip((5.0, 30.0), indices, strict=True):
        assert base**index < value <= base ** (index + 1) * (1 + 1e-9)


def test_jaeger_monitor_names_through_the_prometheus_exporter() -> None:
    async def run() -> str:
        prom = PrometheusExporter(
            CreateSettings(ComponentID("prometheus"), Signal.METRICS),
            PrometheusExporterConfig(endpoint="127.0.0.1:0"),
        )
        c = connector(SpanMetricsConfig(metrics_flush_interval=Duration(3600.0)), prom)
        await c.start(StaticHost())
        await c.consume(Signal.TRACES, spans({"service.name": "checkout", "service.instance.id": "c-1"}))
        await c.shutdown()  # the final flush delivers what the timer has not
        return prom.render()

    text = asyncio.run(run())
    assert (
        'traces_span_metrics_calls_total{instance="c-1",job="checkout",otel_scope_name="spanmetricsconnector",'
        'service_name="checkout",span_kind="SPAN_KIND_SERVER",span_name="GET /pay",'
        'status_code="STATUS_CODE_ERROR"} 1'
    ) in text
    assert "# TYPE traces_span_metrics_duration_milliseconds histogram" in text
    assert "traces_span_metrics_duration_milliseconds_bucket{" in text and 'le="+Inf"} 2' in text


def test_a_flush_refused_under_pressure_is_a_warning_and_the_next_flush_carries_the_series(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class RefusesFirst(Collected):
        refused = 0

        async def consume(self, signal: Signal, request: Request) -> None:
            if not self.refused:
                self.refused += 1
                raise RefusedError("data refused due to high memory usage")
            await super().consume(signal, request)

    out = RefusesFirst()

    async def run() -> None:
        c = connector(SpanMetricsConfig(metrics_flush_interval=Duration(0.01)), out)
        await c.start(StaticHost())
        await c.consume(Signal.TRACES, spans())
        deadline = asyncio.get_running_loop().time() + 10
        while not out.requests and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await c.shutdown()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert out.refused == 1 and out.requests, "the cumulative series went out with a later flush"
    calls = [m for m in out.requests[0].resource_metrics[0].scope_metrics[0].metrics if m.name.endswith(".calls")]
    assert sum(dp.as_int for dp in calls[0].sum.data_points) == 4
    refusals = [r for r in caplog.records if "flush refused" in r.getMessage()]
    assert refusals and all(r.levelno == logging.WARNING and r.exc_info is None for r in refusals)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_events_and_cardinality_limit() -> None:
    out = Collected()
    from collector.connectors.spanmetrics.config import EventsConfig

    c = connector(
        SpanMetricsConfig(
            events=EventsConfig(enabled=True, dimensions=[Dimension("exception.type")]),
            aggregation_cardinality_limit=2,
        ),
        out,
    )
    asyncio.run(c.consume(Signal.TRACES, spans()))
    asyncio.run(c.flush())
    metrics = metrics_by_name(out.requests[0])
    (event,) = metrics["traces.span.metrics.events"].sum.data_points
    assert attrs(event)["event.name"] == "exception" and attrs(event)["exception.type"] == "Timeout"
    calls = metrics["traces.span.metrics.calls"].sum.data_points
    assert len(calls) == 3 and sum(dp.as_int for dp in calls) == 4
    assert sum(1 for dp in calls if attrs(dp).get("otel.metric.overflow") is True) == 1


def named_spans(names: range, start_ns: int = T0, service: str = "checkout") -> ExportTraceServiceRequest:
    """One request, one resource, a SERVER span per name ``op-<i>`` (built as the wire would carry them)."""
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

    request = ExportTraceServiceRequest()
    rs: ResourceSpans = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    scope = rs.scope_spans.add()
    for i in names:
        scope.spans.append(
            Span(
                trace_id=i.to_bytes(16, "big") or b"\x01" * 16,
                span_id=(i + 1).to_bytes(8, "big"),
                name=f"op-{i}",
                kind=Span.SpanKind.SPAN_KIND_SERVER,
                start_time_unix_nano=start_ns,
                end_time_unix_nano=start_ns + 5 * MS,
            )
        )
    return request


def test_cardinality_and_expiration_are_bounded_by_default() -> None:
    config = SpanMetricsConfig()
    assert config.aggregation_cardinality_limit == 2000 and float(config.metrics_expiration) == 300.0
    out = Collected()
    c = connector(config, out)
    asyncio.run(c.consume(Signal.TRACES, named_spans(range(5000))))
    asyncio.run(c.flush())
    metrics = metrics_by_name(out.requests[0])
    calls = metrics["traces.span.metrics.calls"].sum.data_points
    durations = metrics["traces.span.metrics.duration"].histogram.data_points
    assert len(calls) == len(durations) == 2001  # the limit, plus the overflow series
    (overflow,) = [dp for dp in calls if attrs(dp).get("otel.metric.overflow") is True]
    assert attrs(overflow) == {"otel.metric.overflow": True} and overflow.as_int == 3000
    assert sum(dp.as_int for dp in calls) == 5000  # nothing uncounted, only its breakdown lost
    (overflow_duration,) = [dp for dp in durations if attrs(dp).get("otel.metric.overflow") is True]
    assert overflow_duration.count == 3000


def test_series_expire_from_when_spans_arrive_not_from_their_timestamps() -> None:
    import time

    c = connector(SpanMetricsConfig(metrics_expiration=Duration(60.0)), Collected())
    received = time.time_ns()
    c.aggregate(named_spans(range(1), start_ns=0))  # dated 1970
    c.aggregate(named_spans(range(1, 2), start_ns=(2**64 - 1) - 10 * MS))  # dated 2554
    soon = metrics_by_name(c.build_request(received + 10**9))["traces.span.metrics.calls"].sum.data_points
    assert sorted(attrs(dp)["span.name"] for dp in soon) == ["op-0", "op-1"]
    assert not c.build_request(received + 61 * 10**9).resource_metrics  # 61 s without spans: both dropped
    c.aggregate(named_spans(range(1)))
    (point,) = metrics_by_name(c.build_request(time.time_ns()))["traces.span.metrics.calls"].sum.data_points
    assert attrs(point)["span.name"] == "op-0" and point.as_int == 1  # a returning series starts again from zero


def test_series_over_all_resources_are_bounded_too() -> None:
    """30 resources x 2,000 distinct span names: each resource within its own limit, 60,000 series in all. The
    connector keeps MAX_SERIES_TOTAL per metric; the rest is counted in each resource's overflow series."""
    from collector.connectors.spanmetrics.connector import MAX_SERIES_TOTAL

    out = Collected()
    c = connector(SpanMetricsConfig(), out)
    for r in range(30):
        c.aggregate(named_spans(range(r * 2000, (r + 1) * 2000), service=f"svc-{r}"))
    asyncio.run(c.flush())
    calls = [
        dp
        for rm in out.requests[0].resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "traces.span.metrics.calls"
        for dp in m.sum.data_points
    ]
    overflow = [dp for dp in calls if attrs(dp).get("otel.metric.overflow") is True]
    assert len(calls) - len(overflow) == MAX_SERIES_TOTAL
    assert 0 < len(overflow) <= 30  # one per resource that went over
    assert sum(dp.as_int for dp in calls) == 60_000  # every span counted


def test_the_total_bound_follows_expiration_and_forgotten_resources(monkeypatch: object) -> None:
    import time

    from collector.connectors.spanmetrics import connector as module

    monkeypatch.setattr(module, "MAX_SERIES_TOTAL", 10)  # type: ignore[attr-defined]
    config = SpanMetricsConfig(
        aggregation_cardinality_limit=8, resource_metrics_cache_size=2, metrics_expiration=Duration(60.0)
    )
    c = connector(config, Collected())

    def own_series(service: str) -> int:
        request = c.build_request(time.time_ns())
        return sum(
            1
            for rm in request.resource_metrics
            if attrs(rm.resource)["service.name"] == service
            for m in rm.scope_metrics[0].metrics
            if m.name == "traces.span.metrics.calls"
            for dp in m.sum.data_points
            if "otel.metric.overflow" not in attrs(dp)
        )

    c.aggregate(named_spans(range(8), service="a"))
    c.aggregate(named_spans(range(8), service="b"))
    assert own_series("b") == 2  # 8 + 2: the total reached
    c.aggregate(named_spans(range(8), service="c"))  # "a" is forgotten (cache of 2), its 8 series with it
    assert own_series("c") == 8
    c.build_request(time.time_ns() + 61 * 10**9)  # everything expires
    c.aggregate(named_spans(range(8), service="d"))
    assert own_series("d") == 8


@pytest.mark.parametrize(("n", "in_slices"), [(INLINE_ITEMS, False), (2 * INLINE_ITEMS + 1, True)])
def test_a_large_request_is_aggregated_in_slices_that_give_the_loop_back(n: int, in_slices: bool) -> None:
    out = Collected()
    c = connector(SpanMetricsConfig(), out)

    async def main() -> list[str]:
        order: list[str] = []

        async def other() -> None:  # ready before consume starts: runs once the loop is given back
            order.append("other task")

        task = asyncio.get_running_loop().create_task(other())
        await c.consume(Signal.TRACES, named_spans(range(n)))
        order.append("consumed")
        await task
        await c.flush()
        return order

    order = asyncio.run(main())
    assert order == (["other task", "consumed"] if in_slices else ["consumed", "other task"])
    (flushed,) = out.requests
    calls = metrics_by_name(flushed)["traces.span.metrics.calls"].sum.data_points
    assert sum(dp.as_int for dp in calls) == n  # every span counted once, whatever the slicing

"""filter processor: structured include/exclude and the supported OTTL conditions on real encoded data."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from collector.confmap.decode import decode
from processors._matching import (
    KeyValueMatch,
    LibraryMatch,
    LogMatchProperties,
    MatchProperties,
    MetricMatchProperties,
    SeverityNumberMatch,
)
from processors.filter import (
    FilterConfig,
    FilterProcessor,
    LogsFilter,
    MetricsFilter,
    SpansFilter,
    TracesFilter,
)
from processors.pipeline import ComponentID, CreateSettings, Request, Signal, item_count
from tests.support.sdk_data import attrs_of, metrics_in, number_points


def _traces() -> ExportTraceServiceRequest:
    spans: list[ReadableSpan] = []
    for service in ("api", "worker"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service, "env": "prod"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("lib.http", "2.0")
        for route in ("/health", "/orders", "/users"):
            with tracer.start_as_current_span(f"GET {route}", kind=SpanKind.SERVER, attributes={"http.route": route}):
                pass
        with provider.get_tracer("lib.db").start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
        spans.extend(exporter.get_finished_spans())
    return encode_spans(spans)


def _names(request: Request) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for rs in request.resource_spans:
        service = next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name")
        out.extend((service, s.name) for ss in rs.scope_spans for s in ss.spans)
    return sorted(out)


class Sink:
    def __init__(self) -> None:
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)


def _run(cfg: FilterConfig, signal: Signal, request: Request) -> tuple[Sink, int]:
    assert cfg.validate() == []
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otelcol")
    sink = Sink()
    proc = FilterProcessor(CreateSettings(ComponentID("filter", "x"), signal, meter=meter), cfg, sink)
    asyncio.run(proc.consume(signal, request))
    counted = 0
    for m in metrics_in(reader.get_metrics_data()):
        assert m.name.startswith("otelcol_processor_filter_") and m.name.endswith(".filtered")
        for p in number_points(m):
            assert dict(attrs_of(p)) == {"filter": "filter/x"}
            counted += int(p.value)
    return sink, counted


def test_ottl_conditions_drop_matching_spans_and_count_them() -> None:
    cfg = FilterConfig(traces=TracesFilter(span=['attributes["http.route"] == "/health"', 'name == "SELECT"']))
    sink, counted = _run(cfg, Signal.TRACES, _traces())
    assert _names(sink.got[0]) == sorted((svc, f"GET {r}") for svc in ("api", "worker") for r in ("/orders", "/users"))
    assert counted == 4


def test_ottl_is_match_and_not_equal_and_resource_path() -> None:
    cfg = FilterConfig(
        traces=TracesFilter(
            span=['IsMatch(name, "^GET /(health|users)")', 'resource.attributes["service.name"] != "api"']
        )
    )
    sink, counted = _run(cfg, Signal.TRACES, _traces())
    assert _names(sink.got[0]) == [("api", "GET /orders"), ("api", "SELECT")]
    assert counted == 6


def test_ottl_enum_literal_for_span_kind() -> None:
    sink, _ = _run(FilterConfig(traces=TracesFilter(span=["kind == SPAN_KIND_SERVER"])), Signal.TRACES, _traces())
    assert _names(sink.got[0]) == [("api", "SELECT"), ("worker", "SELECT")]


def test_unsupported_conditions_are_config_errors_naming_the_condition() -> None:
    cfg = FilterConfig(
        traces=TracesFilter(span=['name == "a" and kind == 1', "Len(name) > 3", 'name == "ok"', 'links["x"] == 1']),
        metrics=MetricsFilter(datapoint=['attributes["a"] == "b"']),
    )
    errors = cfg.validate()
    assert any(e.startswith("traces.span[0]:") and "and kind" in e for e in errors)
    assert any(e.startswith("traces.span[1]:") and "Len(name)" in e for e in errors)
    assert not any(e.startswith("traces.span[2]") for e in errors)
    assert any(e.startswith("traces.span[3]:") and "links" in e for e in errors)
    assert any(e.startswith("metrics.datapoint:") for e in errors)


def test_mixing_forms_for_one_signal_is_an_error() -> None:
    cfg = FilterConfig(
        spans=SpansFilter(exclude=MatchProperties(match_type="strict", span_names=["x"])),
        traces=TracesFilter(span=['name == "y"']),
    )
    assert any(e.startswith("traces.span:") for e in cfg.validate())


def test_legacy_span_include_and_exclude() -> None:
    cfg = FilterConfig(
        spans=SpansFilter(
            include=MatchProperties(match_type="regexp", services=["^api$"], span_names=["^GET "]),
            exclude=MatchProperties(
                match_type="strict",
                attributes=[KeyValueMatch("http.route", "/health")],
                span_kinds=["SPAN_KIND_SERVER"],
            ),
        )
    )
    sink, counted = _run(cfg, Signal.TRACES, _traces())
    assert _names(sink.got[0]) == [("api", "GET /orders"), ("api", "GET /users")]
    assert counted == 6


def test_legacy_resources_and_libraries() -> None:
    cfg = FilterConfig(
        spans=SpansFilter(
            exclude=MatchProperties(
                match_type="strict",
                resources=[KeyValueMatch("service.name", "worker")],
                libraries=[LibraryMatch("lib.http")],
            )
        )
    )
    sink, _ = _run(cfg, Signal.TRACES, _traces())
    assert ("worker", "SELECT") in _names(sink.got[0])
    assert not [n for n in _names(sink.got[0]) if n[0] == "worker" and n[1].startswith("GET")]


def test_everything_dropped_is_not_passed_on() -> None:
    sink, counted = _run(FilterConfig(traces=TracesFilter(span=['name != ""'])), Signal.TRACES, _traces())
    assert sink.got == []
    assert counted == 8


def _metrics_request() -> Request:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "shop"}))
    meter = provider.get_meter("m")
    keep = meter.create_counter("orders")
    drop = meter.create_histogram("http.server.duration", unit="s")
    for i in range(3):
        keep.add(1, {"i": i})
        drop.record(0.5, {"i": i})
    data = reader.get_metrics_data()
    assert data is not None
    return encode_metrics(data)


@pytest.mark.parametrize(
    "cfg",
    [
        FilterConfig(metrics=MetricsFilter(metric=['IsMatch(name, "^http\\\\.")'])),
        FilterConfig(
            metrics=MetricsFilter(
                exclude=MetricMatchProperties(match_type="strict", metric_names=["http.server.duration"])
            )
        ),
        FilterConfig(
            metrics=MetricsFilter(
                include=MetricMatchProperties(
                    match_type="regexp",
                    metric_names=["^ord"],
                    resource_attributes=[KeyValueMatch("service.name", "sh.p")],
                )
            )
        ),
    ],
)
def test_metrics_dropped_by_name_count_data_points(cfg: FilterConfig) -> None:
    sink, counted = _run(cfg, Signal.METRICS, _metrics_request())
    names = [m.name for rm in sink.got[0].resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert names == ["orders"]
    assert counted == 3
    assert item_count(Signal.METRICS, sink.got[0]) == 3


def _logs_request() -> Request:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app")
    for severity, text, body, component in (
        (SeverityNumber.DEBUG, "DEBUG", "cache miss", "cache"),
        (SeverityNumber.INFO, "INFO", "order placed", "orders"),
        (SeverityNumber.ERROR, "ERROR", "payment failed", "payments"),
    ):
        logger.emit(severity_number=severity, severity_text=text, body=body, attributes={"component": component})
    return encode_logs(exporter.get_finished_logs())


def _bodies(request: Request) -> list[str]:
    return [r.body.string_value for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def test_logs_ottl_and_legacy_forms() -> None:
    # The OTTL subset has no '<': a config error; the structured severity_number form covers it.
    assert FilterConfig(logs=LogsFilter(log_record=["severity_number < 9"])).validate()
    at_least_info = LogMatchProperties(match_type="strict", severity_number=SeverityNumberMatch("INFO"))
    sink, counted = _run(FilterConfig(logs=LogsFilter(include=at_least_info)), Signal.LOGS, _logs_request())
    assert _bodies(sink.got[0]) == ["order placed", "payment failed"] and counted == 1
    sink, counted = _run(
        FilterConfig(logs=LogsFilter(log_record=['attributes["component"] == "cache"', 'IsMatch(body, "^payment")'])),
        Signal.LOGS,
        _logs_request(),
    )
    assert _bodies(sink.got[0]) == ["order placed"] and counted == 2
    sink, counted = _run(
        FilterConfig(
            logs=LogsFilter(
                exclude=LogMatchProperties(
                    match_type="regexp",
                    bodies=["miss$"],
                    resource_attributes=[KeyValueMatch("service.name", "svc")],
                )
            )
        ),
        Signal.LOGS,
        _logs_request(),
    )
    assert _bodies(sink.got[0]) == ["order placed", "payment failed"] and counted == 1


def test_config_decodes_from_upstream_yaml_shape() -> None:
    import yaml

    text = """
error_mode: ignore
spans:
  exclude:
    match_type: strict
    span_names: [healthcheck]
    libraries: [{name: lib.http, version: "2.0"}]
    attributes: [{key: http.route, value: /health}]
logs:
  include:
    match_type: strict
    severity_number: {min: WARN, match_undefined: true}
metrics:
  metric: ['name == "x"']
"""
    errors: list[str] = []
    cfg = decode(FilterConfig, yaml.safe_load(text), "processors.filter", errors)
    assert errors == []
    assert cfg.validate() == []
    assert cfg.spans.exclude.libraries[0].version == "2.0"
    errors = []
    decode(FilterConfig, {"spans": {"exclude": {"match_type": "expr", "span_name": ["x"]}}}, "p", errors)
    assert any("match_type" in e for e in errors) and any("span_name" in e and "span_names" in e for e in errors)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["GET /health", "GET /orders", "GET /users", "SELECT", "nope"]), max_size=4))
def test_structured_and_ottl_forms_agree(names: list[str]) -> None:
    legacy = FilterConfig(spans=SpansFilter(exclude=MatchProperties(match_type="strict", span_names=names)))
    ottl = FilterConfig(traces=TracesFilter(span=[f'name == "{n}"' for n in names]))
    if not names:
        legacy = FilterConfig()
    a, n_a = _run(legacy, Signal.TRACES, _traces())
    b, n_b = _run(ottl, Signal.TRACES, _traces())
    assert n_a == n_b
    assert [_names(r) for r in a.got] == [_names(r) for r in b.got]

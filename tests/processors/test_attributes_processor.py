"""attributes processor: every action on real encoded spans, logs and metric data points; include/exclude."""

from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.confmap.decode import decode
from processors._attributes import attributes_to_dict
from processors._matching import KeyValueMatch, MatchProperties
from processors.attributes import (
    ActionConfig,
    AttributesConfig,
    AttributesProcessor,
    convert_value,
    factories,
    hash_value,
)
from processors.pipeline import ComponentID, CreateSettings, Request, Signal


def _traces(attrs_by_service: dict[str, list[dict[str, object]]]) -> ExportTraceServiceRequest:
    spans: list[ReadableSpan] = []
    for service, attr_list in attrs_by_service.items():
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for i, attrs in enumerate(attr_list):
            with provider.get_tracer("lib").start_as_current_span(f"op{i}", attributes=attrs):  # type: ignore[arg-type]
                pass
        spans.extend(exporter.get_finished_spans())
    return encode_spans(spans)


class Sink:
    def __init__(self) -> None:
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)


def _process(cfg: AttributesConfig, signal: Signal, request: Request) -> Request:
    assert cfg.validate() == []
    sink = Sink()
    proc = AttributesProcessor(CreateSettings(ComponentID("attributes"), signal), cfg, sink)
    asyncio.run(proc.consume(signal, request))
    (out,) = sink.got
    return out


def _span_attrs(request: Request) -> list[dict[str, object]]:
    return [
        attributes_to_dict(s.attributes) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]


def test_factory() -> None:
    (f,) = factories
    assert f.type == "attributes" and f.config_type is AttributesConfig


def test_insert_update_upsert_delete_from_attribute() -> None:
    request = _traces({"api": [{"a": "1", "user.email": "x@y.z", "db.statement": "SELECT 1"}, {"b": 2}]})
    cfg = AttributesConfig(
        actions=[
            ActionConfig(key="a", value="new", action="insert"),  # unchanged where it exists
            ActionConfig(key="env", value="prod", action="insert"),
            ActionConfig(key="b", value=3, action="update"),  # only on the second span
            ActionConfig(key="missing", value=1, action="update"),  # never inserted
            ActionConfig(key="tier", value=1.5, action="upsert"),
            ActionConfig(key="copied", from_attribute="a", action="upsert"),  # no-op where "a" is absent
            ActionConfig(key="ctx", from_context="metadata.x-tenant", action="insert"),  # no context: no-op
            ActionConfig(key="user.email", action="delete"),
            ActionConfig(pattern="^db\\.", action="delete"),
        ]
    )
    first, second = _span_attrs(_process(cfg, Signal.TRACES, request))
    assert first == {"a": "1", "env": "prod", "tier": 1.5, "copied": "1"}
    # The second span had no "a": insert adds it, and the copy then sees it.
    assert second == {"b": 3, "a": "new", "env": "prod", "tier": 1.5, "copied": "new"}


def test_hash_is_sha256_of_upstream_bytes() -> None:
    request = _traces({"api": [{"s": "secret", "i": 42, "d": 1.5, "t": True, "keep": "x"}]})
    cfg = AttributesConfig(
        actions=[ActionConfig(key="s", action="hash"), ActionConfig(pattern="^[idt]$", action="hash")]
    )
    (attrs,) = _span_attrs(_process(cfg, Signal.TRACES, request))
    assert attrs["s"] == hashlib.sha256(b"secret").hexdigest()
    assert attrs["i"] == hashlib.sha256(struct.pack("<q", 42)).hexdigest()
    assert attrs["d"] == hashlib.sha256(struct.pack("<d", 1.5)).hexdigest()
    assert attrs["t"] == hashlib.sha256(b"\x01").hexdigest()
    assert attrs["keep"] == "x"


def test_extract_named_groups() -> None:
    request = _traces({"api": [{"http.url": "https://shop.example/orders/1234?x=1"}, {"http.url": "nope"}]})
    cfg = AttributesConfig(
        actions=[
            ActionConfig(
                key="http.url",
                pattern=r"^(?P<scheme>\w+)://(?P<host>[^/]+)/orders/(?P<order_id>\d+)",
                action="extract",
            )
        ]
    )
    first, second = _span_attrs(_process(cfg, Signal.TRACES, request))
    assert first["scheme"] == "https" and first["host"] == "shop.example" and first["order_id"] == "1234"
    assert second == {"http.url": "nope"}


@pytest.mark.parametrize(
    ("value", "to", "expected"),
    [
        ("42", "int", 42),
        ("x", "int", "x"),  # unconvertible: unchanged
        (3.9, "int", 3),
        (True, "int", 1),
        (7, "double", 7.0),
        ("2.5", "double", 2.5),
        (7, "string", "7"),
        (2.5, "string", "2.5"),
        (1e21, "string", "1000000000000000000000"),
        (False, "string", "false"),
    ],
)
def test_convert(value: object, to: str, expected: object) -> None:
    request = _traces({"api": [{"v": value}]})
    cfg = AttributesConfig(actions=[ActionConfig(key="v", converted_type=to, action="convert")])  # type: ignore[arg-type]
    (attrs,) = _span_attrs(_process(cfg, Signal.TRACES, request))
    assert attrs["v"] == expected and type(attrs["v"]) is type(expected)


@given(st.integers(-(2**63), 2**63 - 1))
def test_convert_int_string_round_trip(n: int) -> None:
    v = AnyValue(int_value=n)
    convert_value(v, "string")
    assert v.string_value == str(n)
    convert_value(v, "int")
    assert v.int_value == n
    assert hash_value(AnyValue(int_value=n)) == hashlib.sha256(struct.pack("<q", n)).hexdigest()


def test_include_and_exclude_select_spans() -> None:
    request = _traces({"api": [{"tenant": "a"}, {"tenant": "b"}], "worker": [{"tenant": "a"}]})
    cfg = AttributesConfig(
        actions=[ActionConfig(key="marked", value=True, action="insert")],
        include=MatchProperties(match_type="strict", services=["api"]),
        exclude=MatchProperties(match_type="regexp", attributes=[KeyValueMatch("tenant", "^b$")]),
    )
    attrs = _span_attrs(_process(cfg, Signal.TRACES, request))
    assert [a.get("marked") for a in attrs] == [True, None, None]


def test_logs_and_metric_data_points() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("app").emit(severity_number=SeverityNumber.INFO, body="hi", attributes={"password": "pw"})
    cfg = AttributesConfig(
        actions=[
            ActionConfig(key="password", action="delete"),
            ActionConfig(key="x", value="y", action="upsert"),
        ]
    )
    out = _process(cfg, Signal.LOGS, encode_logs(exporter.get_finished_logs()))
    (record,) = [r for rl in out.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert attributes_to_dict(record.attributes) == {"x": "y"}

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("m")
    meter.create_counter("hits").add(1, {"route": "/a"})
    meter.create_counter("misses").add(1, {"route": "/b"})
    data = reader.get_metrics_data()
    assert data is not None
    cfg = AttributesConfig(
        actions=[ActionConfig(key="route", action="hash")],
        include=MatchProperties(match_type="strict", metric_names=["hits"]),
    )
    out = _process(cfg, Signal.METRICS, encode_metrics(data))
    points = {
        m.name: attributes_to_dict(m.sum.data_points[0].attributes)
        for rm in out.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert points["hits"]["route"] == hashlib.sha256(b"/a").hexdigest()
    assert points["misses"]["route"] == "/b"


def test_validation_names_fields() -> None:
    cfg = AttributesConfig(
        actions=[
            ActionConfig(key="a", action="insert"),  # no value source
            ActionConfig(key="a", value=1, from_attribute="b", action="upsert"),  # two sources
            ActionConfig(action="delete"),  # neither key nor pattern
            ActionConfig(key="u", pattern="(no named group)", action="extract"),
            ActionConfig(key="c", action="convert"),
            ActionConfig(key="d"),
        ],
        include=MatchProperties(span_names=["x"]),
    )
    errors = cfg.validate()
    for prefix in (
        "actions[0]:",
        "actions[1]:",
        "actions[2]:",
        "actions[3].pattern:",
        "actions[4].converted_type:",
        "actions[5].action:",
        "include.match_type:",
    ):
        assert any(e.startswith(prefix) for e in errors), (prefix, errors)
    assert AttributesConfig().validate() == ["actions: at least one action must be configured"]


def test_decodes_upstream_yaml() -> None:
    import yaml

    text = """
actions:
  - key: db.statement
    action: delete
  - key: environment
    value: production
    action: insert
  - key: http.status_code
    converted_type: int
    action: convert
include:
  match_type: regexp
  services: ["auth.*"]
  resources: [{key: host.name, value: "web-.*"}]
"""
    errors: list[str] = []
    cfg = decode(AttributesConfig, yaml.safe_load(text), "processors.attributes", errors)
    assert errors == [] and cfg.validate() == []
    assert cfg.actions[1].value == "production" and cfg.include.resources[0].key == "host.name"
    errors = []
    decode(AttributesConfig, {"actions": [{"key": "a", "action": "remove"}]}, "p", errors)
    assert errors and "actions[0].action" in errors[0]

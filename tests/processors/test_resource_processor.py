"""resource processor: attribute actions on the resource of every signal."""

from __future__ import annotations

import asyncio
import hashlib

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors._attributes import attributes_to_dict
from processors.attributes import ActionConfig
from processors.pipeline import ComponentID, CreateSettings, Request, Signal
from processors.resource import ResourceConfig, ResourceProcessor, factories

RESOURCE = Resource.create({"service.name": "shop", "host.name": "web-1", "k8s.pod.uid": "abc"})

CONFIG = ResourceConfig(
    attributes=[
        ActionConfig(key="deployment.environment.name", value="prod", action="upsert"),
        ActionConfig(key="host.name", action="hash"),
        ActionConfig(key="k8s.pod.uid", action="delete"),
        ActionConfig(key="service.namespace", from_attribute="service.name", action="insert"),
    ]
)


class Sink:
    def __init__(self) -> None:
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)


def _process(signal: Signal, request: Request) -> Request:
    assert CONFIG.validate() == []
    sink = Sink()
    asyncio.run(
        ResourceProcessor(CreateSettings(ComponentID("resource"), signal), CONFIG, sink).consume(signal, request)
    )
    (out,) = sink.got
    return out


def _check(attrs: dict[str, object]) -> None:
    assert attrs["deployment.environment.name"] == "prod"
    assert attrs["host.name"] == hashlib.sha256(b"web-1").hexdigest()
    assert "k8s.pod.uid" not in attrs
    assert attrs["service.namespace"] == "shop"
    assert attrs["service.name"] == "shop"


def test_traces_metrics_logs() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer_provider.get_tracer("t").start_as_current_span("op") as span:
        span.set_attribute("host.name", "span-level-untouched")
    out = _process(Signal.TRACES, encode_spans(exporter.get_finished_spans()))
    _check(attributes_to_dict(out.resource_spans[0].resource.attributes))
    assert attributes_to_dict(out.resource_spans[0].scope_spans[0].spans[0].attributes) == {
        "host.name": "span-level-untouched"
    }

    reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[reader], resource=RESOURCE).get_meter("m").create_counter("c").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    out = _process(Signal.METRICS, encode_metrics(data))
    _check(attributes_to_dict(out.resource_metrics[0].resource.attributes))

    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger_provider.get_logger("l").emit(severity_number=SeverityNumber.WARN, body="w")
    out = _process(Signal.LOGS, encode_logs(log_exporter.get_finished_logs()))
    _check(attributes_to_dict(out.resource_logs[0].resource.attributes))


def test_factory_and_validation() -> None:
    (f,) = factories
    assert f.type == "resource"
    assert ResourceConfig().validate() == ["attributes: at least one action must be configured"]
    errors = ResourceConfig(attributes=[ActionConfig(key="x", action="upsert")]).validate()
    assert errors and errors[0].startswith("attributes[0]:")

"""debug exporter: the three verbosities and sampling, written through logging."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.component import ComponentID, CreateSettings, Signal
from collector.components import registry
from collector.confmap.sections import decode_section
from collector.exporters.debug import LOGGER_NAME, DebugConfig, DebugExporter
from collector.exporters.exporterhelper.testing import trace_request


def run(config: DebugConfig, *requests: object, signal: Signal = Signal.TRACES) -> None:
    exp = DebugExporter(CreateSettings(ComponentID("debug"), signal), config)

    async def go() -> None:
        for r in requests:
            await exp.consume(signal, r)  # type: ignore[arg-type]

    asyncio.run(go())


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]


def test_basic_prints_one_line_of_counts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        run(DebugConfig(), trace_request("a", "b", "c"))
    assert messages(caplog) == ["Traces {exporter: debug, resource spans: 1, spans: 3}"]


def test_normal_prints_one_line_per_span(caplog: pytest.LogCaptureFixture) -> None:
    req = trace_request("checkout", "pay")
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="tenant.id").value.string_value = "acme"
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        run(DebugConfig(verbosity="normal"), req)
    lines = messages(caplog)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert lines[1] == "ResourceSpans service.name=svc"
    assert lines[3] == f"checkout {span.trace_id.hex()} {span.span_id.hex()} tenant.id=acme"
    assert lines[4].startswith("pay ")


def test_detailed_dumps_everything_with_hex_ids(caplog: pytest.LogCaptureFixture) -> None:
    req = trace_request("checkout")
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        run(DebugConfig(verbosity="detailed"), req)
    dump = messages(caplog)[1]
    assert f"trace_id: {req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()}" in dump
    assert 'name: "checkout"' in dump and 'string_value: "svc"' in dump


def test_metrics_points_are_counted_and_listed(caplog: pytest.LogCaptureFixture) -> None:
    req = ExportMetricsServiceRequest()
    metric = req.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "operation.calls"
    metric.sum.data_points.add().as_int = 5
    metric.sum.data_points.add().as_int = 7
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        run(DebugConfig(verbosity="normal"), req, signal=Signal.METRICS)
    lines = messages(caplog)
    assert lines[0] == "Metrics {exporter: debug, resource metrics: 1, data points: 2}"
    assert lines[3:] == ["operation.calls{} 5", "operation.calls{} 7"]


def test_sampling_initial_then_every_nth(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        run(DebugConfig(sampling_initial=2, sampling_thereafter=3), *(trace_request("x") for _ in range(8)))
    # 1, 2 (initial), then the 5th and 8th: at most 4 lines (fewer only if a second boundary passed mid-run).
    assert 2 <= len(messages(caplog)) <= 5


def test_registered_and_validated() -> None:
    assert registry().exporters["debug"].config_type is DebugConfig
    errors: list[str] = []
    decode_section(DebugConfig, {"sampling_thereafter": 0}, "exporters.debug", errors)
    assert errors == ["exporters.debug.sampling_thereafter: must be >= 1, got 0"]

"""Details of what leaves the process: pre-aggregated operation metrics (temporality, overflow), enrichment
(redaction, cost for third-party GenAI spans), the testing helpers and the logging filter."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import Histogram as SDKHistogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram

import otel_metrics
from otel_metrics import correlation_scope, track_performance
from otel_metrics._internal.operation_metrics import OperationAggregator
from otel_metrics.testing import Capture, InMemoryMetricExporter, capture, otel_capture  # noqa: F401
from tests.support.sdk_data import attrs_of, histogram_points, metrics_in, number_points


@track_performance("calc")
def add(a: int, b: int) -> int:
    return a + b


def test_duration_histogram_buckets_and_cumulative_counts(telemetry: Any, receiver: Any) -> None:
    for _ in range(3):
        add(1, 2)
    telemetry.force_flush()
    for _ in range(2):
        add(1, 2)
    telemetry.force_flush()
    store = receiver.store
    store.wait_for(lambda: len(store.points("operation.duration")) >= 2)
    counts = [p.value[0] for p in store.points("operation.duration")]
    assert counts[-2:] == [3, 5]  # cumulative (the OTLP exporter's default temporality)
    calls = [p.value for p in store.points("operation.calls")]
    assert calls[-2:] == [3, 5]


def test_delta_temporality_is_honoured(monkeypatch: Any) -> None:
    exporter = InMemoryMetricExporter()
    exporter._preferred_temporality = {SDKHistogram: AggregationTemporality.DELTA}
    from otel_metrics._internal.operation_metrics import OperationMetricsExporter

    ops = OperationAggregator((0.1, 1.0))
    wrapped = OperationMetricsExporter(exporter, ops, "otel_metrics")
    series = ops.series(("op", "success", None, None), {"operation.name": "op", "operation.outcome": "success"}, False)
    series.add(0.05, 0, 0)
    series.add(0.5, 0, 0)
    first = wrapped._histogram()
    series.add(5.0, 0, 0)
    second = wrapped._histogram()
    assert first is not None and second is not None
    (p1,), (p2,) = histogram_points(first), histogram_points(second)
    assert (p1.count, list(p1.bucket_counts)) == (2, [1, 1, 0])
    assert (p2.count, list(p2.bucket_counts), p2.sum) == (1, [0, 0, 1], 5.0)
    assert isinstance(first.data, Histogram) and first.data.aggregation_temporality == AggregationTemporality.DELTA
    assert wrapped._histogram() is None  # nothing new: no point


def test_series_overflow_is_bounded() -> None:
    ops = OperationAggregator((1.0,), limit=3)
    for i in range(10):
        ops.series(("op", i), {"operation.name": f"op{i}", "operation.outcome": "success"}, False).add(0.1, 0, 0)
    series = ops.all_series()
    assert len(series) == 4  # 3 + the overflow series
    overflow = [s for s in series if s.attributes.get("otel.metric.overflow")]
    assert overflow and overflow[0].count == 7


def test_redaction_and_third_party_genai_cost_on_export(telemetry: Any, receiver: Any) -> None:
    tracer = trace.get_tracer("some.genai.instrumentation")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 10,
                "http.request.header.authorization": "Bearer abcdefghijklmnop",
                "db.password": "hunter2",
            }
        )
    telemetry.force_flush()
    exported = receiver.store.span_named("chat gpt-4o")
    assert exported.attributes["db.password"] == "[REDACTED]"
    assert "abcdefghijklmnop" not in str(exported.attributes)
    assert exported.attributes["cost.usd"] > 0


def test_redact_false_keeps_values(receiver: Any) -> None:
    tel = otel_metrics.configure("noredact", endpoint=receiver.endpoint, redact=False)
    try:
        with trace.get_tracer("t").start_as_current_span("plain") as span:
            span.set_attribute("db.password", "hunter2")
        tel.force_flush()
        assert receiver.store.span_named("plain").attributes["db.password"] == "hunter2"
    finally:
        tel.shutdown()


def test_testing_capture_sees_spans_and_metrics() -> None:
    with capture("unit") as tel:
        with correlation_scope("cap-1"):
            add(2, 3)
        span = tel.span("calc.add")
        assert attrs_of(span)["correlation.id"] == "cap-1"
        assert span.resource.attributes["service.name"] == "unit"
        calls = tel.metric_points("operation.calls")
        assert [p.value for p in calls] == [1]
        durations = tel.metric_points("operation.duration")
        assert durations[0].point.count == 1


def test_pytest_fixture(otel_capture: Capture) -> None:  # noqa: F811 - the fixture imported above
    add(1, 1)
    assert attrs_of(otel_capture.span("calc.add"))["operation.outcome"] == "success"


def test_logging_filter_adds_ids(caplog: Any) -> None:
    from otel_metrics.logging import CorrelationFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert CorrelationFilter().filter(record)
    assert (record.correlation_id, record.trace_id, record.span_id) == ("", "", "")  # type: ignore[attr-defined]
    with correlation_scope("log-1"), trace.get_tracer("t").start_as_current_span("s") as span:
        CorrelationFilter().filter(record)
        ctx = span.get_span_context()
    assert record.correlation_id == "log-1"  # type: ignore[attr-defined]
    if ctx.is_valid:
        assert record.trace_id == format(ctx.trace_id, "032x")  # type: ignore[attr-defined]


def test_install_adds_filter_to_handlers() -> None:
    from otel_metrics.logging import CorrelationFilter, install

    logger = logging.getLogger("otel_metrics.test.install")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)
        assert sum(isinstance(f, CorrelationFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("bad", [None, 0, "x" * 200])
def test_get_correlation_id_never_raises(bad: Any) -> None:
    with correlation_scope(bad) as cid:
        assert otel_metrics.get_correlation_id() == cid


def test_full_queue_drops_are_counted_and_calls_never_block(monkeypatch: Any) -> None:
    import threading

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class StuckExporter(SpanExporter):
        """A collector that never answers: the first export blocks until the test releases it."""

        def __init__(self) -> None:
            self.entered = threading.Event()
            self.release = threading.Event()

        def export(self, spans: Any) -> SpanExportResult:
            self.entered.set()
            self.release.wait(30)
            return SpanExportResult.SUCCESS

    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
    stuck, metrics = StuckExporter(), InMemoryMetricExporter()
    tel = otel_metrics.configure("drops", _span_exporters=[stuck], _metric_exporters=[metrics])
    try:
        add(0, 0)
        assert stuck.entered.wait(10)  # the worker is now stuck inside export
        for i in range(50):
            assert add(i, 1) == i + 1  # returns at once although nothing can be sent
        tel.meter_provider.force_flush()  # type: ignore[union-attr]
        processed = [
            p
            for m in metrics_in(metrics.latest, "otel.sdk.processor.span.processed")
            for p in number_points(m)
            if attrs_of(p).get("error.type") == "queue_full"
        ]
        assert processed and processed[0].value >= 50 - 8
    finally:
        stuck.release.set()
        tel.shutdown(timeout_s=10)


def test_fastapi_module_names_the_extra_when_missing() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['opentelemetry.instrumentation.fastapi'] = None\n"
        "try:\n    import otel_metrics.fastapi\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "pip install 'otel-metrics[fastapi]'" in out


def test_our_processor_is_both_upstream_processor_classes(telemetry: Any) -> None:
    from processors.business import BusinessSpanProcessor
    from processors.correlation import CorrelationSpanProcessor
    from processors.sdk import EnrichingSpanProcessor

    chain = telemetry.tracer_provider._active_span_processor._span_processors
    assert isinstance(chain[0], CorrelationSpanProcessor) and isinstance(chain[0], BusinessSpanProcessor)
    assert len(chain) == 1 and isinstance(getattr(chain[0], "_inner", None), EnrichingSpanProcessor)  # wrapped


def test_every_exporter_gets_every_span_enriched() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporters = [InMemorySpanExporter() for _ in range(3)]
    tel = otel_metrics.configure("many", _span_exporters=exporters, _metric_exporters=[])
    try:

        @track_performance("svc")
        def work() -> None:
            trace.get_current_span().set_attribute("db.password", "hunter2")

        with correlation_scope("req-9"):
            work()
        assert tel.force_flush()
        for exporter in exporters:
            (span,) = exporter.get_finished_spans()
            assert attrs_of(span) == {
                "correlation.id": "req-9",
                "operation.outcome": "success",
                "db.password": "[REDACTED]",
            }
    finally:
        tel.shutdown()

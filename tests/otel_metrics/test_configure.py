"""configure(): what reaches a real OTLP receiver over gRPC and HTTP, env precedence, reconfiguration."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import Observation

import otel_metrics
from otel_metrics import track_performance
from otel_metrics.testing import InMemoryMetricExporter
from tests.support.sdk_data import histogram_points, metrics_in, number_points


@track_performance("svc")
def work(x: int) -> int:
    return x * 2


def test_spans_and_metrics_reach_grpc_receiver_with_resource(telemetry: Any, receiver: Any) -> None:
    assert work(21) == 42
    assert telemetry.force_flush()
    span = receiver.store.span_named("svc.work")
    assert span.resource["service.name"] == "test-service"
    assert span.resource["env"] == "t"
    assert span.scope == "otel_metrics"
    assert span.attributes["operation.outcome"] == "success"
    calls = receiver.store.wait_for(lambda: receiver.store.points("operation.calls"))
    assert calls[0].value == 1 and calls[0].unit == "{call}"
    assert calls[0].attributes == {"operation.name": "svc.work", "operation.outcome": "success"}
    durations = receiver.store.points("operation.duration")
    assert durations[0].unit == "s" and durations[0].value[0] == 1


def test_http_protobuf_protocol_reaches_http_receiver(http_receiver: Any) -> None:
    http_receiver.store.clear()
    tel = otel_metrics.configure(
        "http-svc", endpoint=http_receiver.endpoint, protocol="http/protobuf", headers={"x-api-key": "k1"}
    )
    try:
        work(1)
        assert tel.force_flush()
        span = http_receiver.store.span_named("svc.work")
        assert span.resource["service.name"] == "http-svc"
        assert http_receiver.store.wait_for(lambda: http_receiver.store.points("operation.calls"))
        assert any(h.get("x-api-key") == "k1" for h in http_receiver.store.headers)
    finally:
        tel.shutdown()


def test_second_configure_does_not_stack_and_old_tracers_follow(receiver: Any, http_receiver: Any) -> None:
    http_receiver.store.clear()
    early_tracer = trace.get_tracer("some.library")  # obtained before (re)configuration, as libraries do
    first = otel_metrics.configure("first", endpoint=http_receiver.endpoint, protocol="http/protobuf")
    second = otel_metrics.configure("second", endpoint=receiver.endpoint)
    try:
        assert first.tracer_provider is not second.tracer_provider
        with early_tracer.start_as_current_span("lib-span"):
            work(2)
        assert second.force_flush()
        spans = receiver.store.wait_for(lambda: [s for s in receiver.store.spans() if s.name == "svc.work"])
        assert len(spans) == 1, "a span must be exported once, not once per configure()"
        assert spans[0].resource["service.name"] == "second"
        lib = receiver.store.span_named("lib-span")
        assert spans[0].parent_span_id == lib.span_id
        assert not [s for s in http_receiver.store.spans() if s.name in ("svc.work", "lib-span")]
        # the first pipeline was shut down: its providers no longer record
        assert first._stopped
    finally:
        second.shutdown()


def test_env_vars_are_honoured_when_arguments_are_absent(http_receiver: Any, monkeypatch: Any) -> None:
    http_receiver.store.clear()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tel = otel_metrics.configure()
    try:
        work(3)
        with trace.get_tracer("t").start_as_current_span("sampled-out"):
            pass
        assert tel.force_flush()
        points = http_receiver.store.wait_for(lambda: http_receiver.store.points("operation.calls"))
        assert points[0].resource["service.name"] == "from-env"
        assert points[0].resource["deployment.environment.name"] == "staging"
        assert http_receiver.store.spans() == []  # OTEL_TRACES_SAMPLER=always_off honoured
    finally:
        tel.shutdown()


def test_argument_overrides_env(receiver: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    tel = otel_metrics.configure("from-arg", endpoint=receiver.endpoint, protocol="grpc")
    try:
        work(4)
        assert tel.force_flush()
        assert receiver.store.span_named("svc.work").resource["service.name"] == "from-arg"
    finally:
        tel.shutdown()


def test_sdk_disabled_gives_noop_and_everything_still_callable(receiver: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tel = otel_metrics.configure("off", endpoint=receiver.endpoint)
    assert tel.disabled
    assert work(5) == 10
    with otel_metrics.correlation_scope("abc"), otel_metrics.business_context(tenant_id="t"):
        assert otel_metrics.get_correlation_id() == "abc"
        otel_metrics.record_llm_usage("gpt-4o", 10, 10)
        otel_metrics.record_satisfaction(0.5)
    assert tel.force_flush()
    tel.shutdown()
    assert receiver.store.spans() == []


def test_bad_arguments_are_logged_not_raised(receiver: Any, caplog: Any) -> None:
    tel = otel_metrics.configure(
        "bad",
        endpoint=receiver.endpoint,
        protocol="carrier-pigeon",
        pricing={"m": "not a price"},
        metric_dimensions=("correlation.id", 3),  # type: ignore[arg-type]
    )
    try:
        assert not tel.disabled
        assert "carrier-pigeon" in caplog.text
        assert "correlation.id never becomes a metric attribute" in caplog.text
        work(6)
        assert tel.force_flush()
        assert receiver.store.span_named("svc.work")
    finally:
        tel.shutdown()


def test_collector_unreachable_raises_nothing_and_does_not_block() -> None:
    # A subprocess, so the exit path (atexit flush against a dead endpoint) is exercised too.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # bound, never listening: connections are refused
        code = textwrap.dedent(f"""
            import time, otel_metrics
            from otel_metrics import track_performance, record_llm_usage
            otel_metrics.configure("dead", endpoint="http://127.0.0.1:{dead_port}")

            @track_performance("svc")
            def op(i):
                record_llm_usage("gpt-4o", 10, 5)
                return i

            t = time.perf_counter()
            assert sum(op(i) for i in range(3000)) == sum(range(3000))
            print("calls_s", time.perf_counter() - t)
        """)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr.replace("Transient error", "")
    assert "calls_s" in proc.stdout
    # exit flush is bounded (DEFAULT_EXIT_TIMEOUT_S per provider + exporter timeouts), never a hang
    assert elapsed < 100


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_logs_exported_with_correlation(protocol: str, receiver: Any, http_receiver: Any) -> None:
    import logging

    target = receiver if protocol == "grpc" else http_receiver
    target.store.clear()
    tel = otel_metrics.configure("logs", endpoint=target.endpoint, protocol=protocol, logs=True)
    try:
        log = logging.getLogger("app.test")
        log.setLevel(logging.INFO)
        with (
            otel_metrics.correlation_scope("req-42"),
            trace.get_tracer("t").start_as_current_span("s") as span,
        ):
            log.info("hello %s", "world")
            trace_id = format(span.get_span_context().trace_id, "032x")
        assert tel.force_flush()
        records = target.store.wait_for(lambda: [r for r in target.store.log_records() if r[0] == "hello world"])
        _body, attributes, record_trace_id = records[0]
        assert attributes["correlation_id"] == "req-42"
        assert record_trace_id == trace_id
    finally:
        tel.shutdown()
    assert not any(type(h).__name__ == "LoggingHandler" for h in logging.getLogger().handlers)


_SIGTERMED = """
import os
import signal
import sys

import otel_metrics
from opentelemetry import trace

otel_metrics.configure("sigterm-script", endpoint=sys.argv[1])
with trace.get_tracer("t").start_as_current_span("before-sigterm"):
    pass
os.kill(os.getpid(), signal.SIGTERM)  # the default disposition would die here without running atexit
signal.pause()
"""


def test_configure_flushes_on_sigterm_then_dies_of_it(receiver: Any, tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "script.py"
    script.write_text(_SIGTERMED)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, str(script), receiver.endpoint], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    store = receiver.store
    found = store.wait_for(lambda: [s for s in store.spans() if s.resource.get("service.name") == "sigterm-script"])
    assert [s.name for s in found] == ["before-sigterm"]


def test_instruments_of_every_kind_follow_a_second_configure() -> None:
    """A library's instruments, made once from the global meter, measure into the current pipeline after each
    configure() and into no earlier one: synchronous ones forward, observable ones are re-registered."""
    first_export, second_export = InMemoryMetricExporter(), InMemoryMetricExporter()
    first = otel_metrics.configure("first", _span_exporters=[], _metric_exporters=[first_export])
    meter = metrics.get_meter("some.library")
    counter = meter.create_counter("lib.calls")
    updown = meter.create_up_down_counter("lib.inflight")
    histogram = meter.create_histogram("lib.latency", unit="ms", explicit_bucket_boundaries_advisory=[1.0, 10.0])
    gauge = meter.create_gauge("lib.temperature")
    meter.create_observable_counter("lib.bytes", [lambda _options: [Observation(7)]])
    meter.create_observable_gauge("lib.queue", [lambda _options: [Observation(3)]])
    meter.create_observable_up_down_counter("lib.open", [lambda _options: [Observation(-2)]])

    def measure_and_read(telemetry: otel_metrics.Telemetry, exporter: InMemoryMetricExporter) -> dict[str, Any]:
        counter.add(2)
        updown.add(-1)
        histogram.record(5.0)
        gauge.set(21.5)
        assert telemetry.force_flush()
        found: dict[str, Any] = {}
        for metric in metrics_in(exporter.latest):
            if not metric.name.startswith("lib."):
                continue
            if metric.name == "lib.latency":
                (point,) = histogram_points(metric)
                found[metric.name] = (point.count, point.sum, list(point.explicit_bounds))
            else:
                (number,) = number_points(metric)
                found[metric.name] = number.value
        return found

    expected = {
        "lib.calls": 2,
        "lib.inflight": -1,
        "lib.latency": (1, 5.0, [1.0, 10.0]),
        "lib.temperature": 21.5,
        "lib.bytes": 7,
        "lib.queue": 3,
        "lib.open": -2,
    }
    assert measure_and_read(first, first_export) == expected
    second = otel_metrics.configure("second", _span_exporters=[], _metric_exporters=[second_export])
    try:
        before = first_export.latest
        assert measure_and_read(second, second_export) == expected  # the new pipeline's own counts
        assert first_export.latest is before  # the first pipeline is shut down: it exported nothing more
    finally:
        second.shutdown()

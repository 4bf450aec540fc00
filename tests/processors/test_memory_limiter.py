"""memory_limiter: refuses before doing work above the soft limit, GCs above the hard limit, real RSS."""

from __future__ import annotations

import asyncio
import gc
import platform

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors.memory_limiter import (
    MEMORY_PER_WIRE_BYTE,
    MIB,
    MemoryLimiterConfig,
    MemoryLimiterProcessor,
    admit,
    factories,
    limit_malloc_arenas,
    process_rss_bytes,
    total_memory_bytes,
)
from processors.pipeline import ComponentID, CreateSettings, Duration, RefusedError, Request, Signal
from tests.support.sdk_data import metrics_in, number_points


def _request(n: int = 3) -> ExportTraceServiceRequest:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for i in range(n):
        with provider.get_tracer("t").start_as_current_span(f"op{i}"):
            pass
    return encode_spans(exporter.get_finished_spans())


class Sink:
    def __init__(self) -> None:
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.got.append(request)


class Gauge:
    """An injectable memory reading."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.value


def _limiter(sink: Sink, cfg: MemoryLimiterConfig, **kw: object) -> tuple[MemoryLimiterProcessor, InMemoryMetricReader]:
    assert cfg.validate() == []
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otelcol")
    settings = CreateSettings(ComponentID("memory_limiter"), Signal.TRACES, meter=meter)
    return MemoryLimiterProcessor(settings, cfg, sink, **kw), reader  # type: ignore[arg-type]


def _metric(reader: InMemoryMetricReader, name: str) -> int:
    return sum(int(p.value) for m in metrics_in(reader.get_metrics_data(), name) for p in number_points(m))


def test_factory_and_validation_name_fields() -> None:
    (f,) = factories
    assert f.type == "memory_limiter"
    errors = MemoryLimiterConfig().validate()
    assert any(e.startswith("limit_mib:") for e in errors)
    cfg = MemoryLimiterConfig(check_interval=Duration(0), limit_mib=100, spike_limit_mib=100)
    errors = cfg.validate()
    assert {e.split(":")[0] for e in errors} == {"check_interval", "spike_limit_mib"}
    assert (
        MemoryLimiterConfig(limit_percentage=80, spike_limit_percentage=90)
        .validate()[0]
        .startswith("spike_limit_percentage:")
    )


def test_limits_default_spike_is_a_fifth_and_percentages_use_total_memory() -> None:
    assert MemoryLimiterConfig(limit_mib=100).limits() == (100 * MIB, 80 * MIB)
    assert MemoryLimiterConfig(limit_mib=100, spike_limit_mib=30).limits() == (100 * MIB, 70 * MIB)
    cfg = MemoryLimiterConfig(limit_percentage=50, spike_limit_percentage=10)
    assert cfg.limits(lambda: 1000 * MIB) == (500 * MIB, 400 * MIB)
    assert total_memory_bytes() > 0 and process_rss_bytes() > 0


def test_below_soft_limit_passes_above_refuses_before_downstream() -> None:
    async def run() -> None:
        gauge = Gauge(10 * MIB)
        sink = Sink()
        cfg = MemoryLimiterConfig(limit_mib=100, check_interval=Duration(3600))
        proc, reader = _limiter(sink, cfg, memory_reader=gauge)
        await proc.start(None)
        try:
            await proc.consume(Signal.TRACES, _request(3))
            assert len(sink.got) == 1
            proc.reserve(1)  # a request in flight: the memory is data moving through, not a floor
            gauge.value = 85 * MIB  # above soft (80), below hard (100)
            proc.check()
            with pytest.raises(RefusedError, match="soft limit 80 MiB") as info:
                await proc.consume(Signal.TRACES, _request(4))
            assert info.value.retry_after >= 1.0
            assert len(sink.got) == 1
            assert _metric(reader, "otelcol_processor_refused_spans") == 4
            assert _metric(reader, "otelcol_processor_accepted_spans") == 3
            gauge.value = 10 * MIB
            proc.release(1)
            proc.check()
            await proc.consume(Signal.TRACES, _request(1))
            assert len(sink.got) == 2
        finally:
            await proc.shutdown()

    asyncio.run(run())


def test_stale_reading_is_refreshed_inline() -> None:
    async def run() -> None:
        gauge = Gauge(10 * MIB)
        sink = Sink()
        # No start(): no periodic task, so only the inline staleness check can see the reading.
        cfg = MemoryLimiterConfig(limit_mib=100, check_interval=Duration(0.000001))
        proc, _ = _limiter(sink, cfg, memory_reader=gauge)
        proc.reserve(1)  # a request in flight
        gauge.value = 90 * MIB
        with pytest.raises(RefusedError):
            await proc.consume(Signal.TRACES, _request(1))
        assert gauge.reads >= 1

    asyncio.run(run())


def test_periodic_check_runs_from_start() -> None:
    async def run() -> None:
        gauge = Gauge(10 * MIB)
        cfg = MemoryLimiterConfig(limit_mib=100, check_interval=Duration(0.01))
        proc, _ = _limiter(Sink(), cfg, memory_reader=gauge)
        await proc.start(None)
        try:
            gauge.value = 95 * MIB

            async def until_seen() -> None:
                while proc.usage != 95 * MIB:
                    await asyncio.sleep(0.005)

            await asyncio.wait_for(until_seen(), 5)
        finally:
            await proc.shutdown()

    asyncio.run(run())


def test_hard_limit_forces_gc(monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[int] = []

    def collect(*args: object) -> int:
        collected.append(1)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    gauge = Gauge(120 * MIB)
    proc, _ = _limiter(Sink(), MemoryLimiterConfig(limit_mib=100, check_interval=Duration(3600)), memory_reader=gauge)
    proc.check()
    proc.check()
    assert len(collected) == 2  # min_gc_interval_when_hard_limited defaults to 0
    gauge.value = 85 * MIB  # soft-limited: at most one GC per min_gc_interval_when_soft_limited (10s)
    proc.check()
    assert len(collected) == 2
    fresh, _ = _limiter(Sink(), MemoryLimiterConfig(limit_mib=100, check_interval=Duration(3600)), memory_reader=gauge)
    fresh.check()
    fresh.check()
    assert len(collected) == 3


def test_real_allocation_is_refused_and_released() -> None:
    """Real RSS: allocate 96 MiB above the current usage with a 64 MiB headroom; refusal, then recovery."""

    async def run() -> None:
        gc.collect()
        base_mib = process_rss_bytes() // MIB
        cfg = MemoryLimiterConfig(limit_mib=base_mib + 80, spike_limit_mib=16, check_interval=Duration(0.000001))
        sink = Sink()
        proc, _ = _limiter(sink, cfg)
        await proc.consume(Signal.TRACES, _request(1))
        ballast = bytearray(b"\x01") * (96 * MIB)  # written, so resident
        try:
            with pytest.raises(RefusedError, match="high memory usage"):
                await proc.consume(Signal.TRACES, _request(1))
        finally:
            del ballast
        proc.check()
        await proc.consume(Signal.TRACES, _request(1))
        assert len(sink.got) == 2

    asyncio.run(run())


def test_admission_reserves_before_decoding_and_refuses_what_would_not_fit() -> None:
    async def run() -> None:
        gauge = Gauge(50 * MIB)
        cfg = MemoryLimiterConfig(limit_mib=100, spike_limit_mib=20, check_interval=Duration(3600))
        proc, _ = _limiter(Sink(), cfg, memory_reader=gauge)
        await proc.start(None)  # a running limiter is asked by admit()
        try:
            wire = 5 * MIB // 2  # takes MEMORY_PER_WIRE_BYTE (6) times that once decoded: 15 MiB
            first = admit(wire)  # alone in flight: always admitted
            assert proc.in_flight == wire * MEMORY_PER_WIRE_BYTE
            second = admit(wire)  # 50 + 15 + 15 MiB < 90 MiB, soft (80) + half the spike allowance
            with pytest.raises(RefusedError, match="reserved by requests in flight") as info:
                admit(wire)  # 50 + 30 + 15 MiB would pass it (under the hard limit: the other half is for what no
                # reservation covers)
            assert info.value.retry_after >= 1.0
            with first:
                pass
            with second, admit(wire):  # room again once the first is through
                assert proc.in_flight == 2 * wire * MEMORY_PER_WIRE_BYTE
            assert proc.in_flight == 0
        finally:
            await proc.shutdown()
        with admit(1 << 30):  # no limiter running: nothing to ask
            pass

    asyncio.run(run())


def test_memory_that_a_collection_cannot_free_while_idle_is_a_floor_not_pressure() -> None:
    async def run() -> None:
        gauge = Gauge(10 * MIB)
        cfg = MemoryLimiterConfig(limit_mib=100, spike_limit_mib=20, check_interval=Duration(0.001))
        proc, _ = _limiter(Sink(), cfg, memory_reader=gauge)
        await proc.start(None)
        try:
            gauge.value = 85 * MIB  # after a burst: nothing in flight, and a collection gives nothing back
            proc.check()
            assert proc.soft_limit_in_force == 95 * MIB  # floor + spike / 2
            with admit(1):  # accepted again at once, not after minutes
                pass
            gauge.value = 99 * MIB
            proc.check()
            assert proc.soft_limit_in_force == 100 * MIB  # never above the hard limit
            gauge.value = 100 * MIB
            with pytest.raises(RefusedError):
                admit(1)
            gauge.value = 30 * MIB  # the memory came back: the soft limit is the configured one again
            proc.check()
            assert proc.soft_limit_in_force == 80 * MIB
        finally:
            await proc.shutdown()

    asyncio.run(run())


def test_malloc_arenas_are_capped_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False  # the operator's setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")

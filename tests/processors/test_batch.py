"""batch processor: merging, splitting, size/timeout triggers, and the durability contract."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processors.batch import BatchConfig, BatchProcessor, factories
from processors.pipeline import ComponentID, CreateSettings, Duration, Request, Signal, item_count


def _sdk_spans(n_resources: int, scopes: int, per_scope: int) -> list[ReadableSpan]:
    spans: list[ReadableSpan] = []
    for r in range(n_resources):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"svc{r}"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for s in range(scopes):
            tracer = provider.get_tracer(f"lib{s}", "1.0")
            for i in range(per_scope):
                with tracer.start_as_current_span(f"op{i}", attributes={"i": i}):
                    pass
        spans.extend(exporter.get_finished_spans())
    return spans


POOL = _sdk_spans(3, 2, 10)  # 60 real spans over 3 resources x 2 scopes


def _identity(request: Request) -> list[tuple[bytes, str, str]]:
    """(span_id, service.name, scope name) for every span."""
    out: list[tuple[bytes, str, str]] = []
    for rs in request.resource_spans:
        service = next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name")
        for ss in rs.scope_spans:
            out.extend((span.span_id, service, ss.scope.name) for span in ss.spans)
    return out


class Sink:
    def __init__(self) -> None:
        self.batches: list[Request] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def consume(self, signal: Signal, request: Request) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        copy = type(request)()
        copy.CopyFrom(request)
        self.batches.append(copy)


def _processor(sink: Sink, **kw: object) -> BatchProcessor:
    cfg = BatchConfig(**kw)  # type: ignore[arg-type]
    assert cfg.validate() == []
    return BatchProcessor(CreateSettings(ComponentID("batch"), Signal.TRACES), cfg, sink)


async def _wait_for(cond: object, deadline: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), deadline)


def test_factory_and_defaults() -> None:
    (f,) = factories
    assert f.type == "batch"
    cfg = f.config_type()
    assert (cfg.send_batch_size, cfg.send_batch_max_size, cfg.timeout) == (8192, 0, 0.2)


def test_validate_names_the_field() -> None:
    errors = BatchConfig(send_batch_size=100, send_batch_max_size=10).validate()
    assert len(errors) == 1 and errors[0].startswith("send_batch_max_size:")
    assert BatchConfig(timeout=Duration(-1)).validate()[0].startswith("timeout:")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(1, 20), min_size=1, max_size=8),
    size=st.integers(1, 30),
    extra=st.integers(0, 20),
    bounded=st.booleans(),
    idle=st.booleans(),
)
def test_split_and_merge_keep_every_span_once_with_its_resource_and_scope(
    cuts: list[int], size: int, extra: int, bounded: bool, idle: bool
) -> None:
    # Partition a prefix of the pool into requests of the drawn sizes; send them concurrently.
    requests, start = [], 0
    for c in cuts:
        if start >= len(POOL):
            break
        requests.append(encode_spans(POOL[start : start + c]))
        start += c
    expected = Counter(x for r in requests for x in _identity(r))
    max_size = size + extra if bounded else 0

    async def run() -> Sink:
        sink = Sink()
        proc = _processor(
            sink, send_batch_size=size, send_batch_max_size=max_size, timeout=Duration(0.01), flush_when_idle=idle
        )
        await asyncio.gather(*(proc.consume(Signal.TRACES, r) for r in requests))
        await proc.shutdown()
        return sink

    sink = asyncio.run(run())
    got = Counter(x for b in sink.batches for x in _identity(b))
    assert got == expected
    assert all(n == 1 for n in got.values())
    if max_size:
        assert all(item_count(Signal.TRACES, b) <= max_size for b in sink.batches)


def test_size_trigger_merges_requests_into_one_batch() -> None:
    async def run() -> Sink:
        sink = Sink()
        proc = _processor(sink, send_batch_size=20, timeout=Duration(3600))
        await asyncio.gather(*(proc.consume(Signal.TRACES, encode_spans(POOL[i : i + 10])) for i in (0, 10)))
        return sink

    sink = asyncio.run(run())
    assert len(sink.batches) == 1
    assert item_count(Signal.TRACES, sink.batches[0]) == 20


def test_timeout_flushes_a_small_batch() -> None:
    async def run() -> Sink:
        sink = Sink()
        proc = _processor(sink, send_batch_size=10_000, timeout=Duration(0.02))
        await asyncio.wait_for(proc.consume(Signal.TRACES, encode_spans(POOL[:5])), 5)
        return sink

    sink = asyncio.run(run())
    assert [item_count(Signal.TRACES, b) for b in sink.batches] == [5]


def test_consume_returns_only_after_downstream_accepted_the_batch() -> None:
    async def run() -> None:
        sink = Sink()
        sink.gate = asyncio.Event()
        proc = _processor(sink, send_batch_size=4, timeout=Duration(3600))
        a = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[:2])))
        b = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[2:4])))
        # The size trigger fired, the batch is at the (blocked) downstream: nobody may return yet.
        for _ in range(50):
            await asyncio.sleep(0)
        assert not a.done() and not b.done()
        assert sink.batches == []
        sink.gate.set()
        await asyncio.wait_for(asyncio.gather(a, b), 5)
        assert sum(item_count(Signal.TRACES, x) for x in sink.batches) == 4

    asyncio.run(run())


def test_downstream_error_reaches_every_caller_of_that_batch() -> None:
    async def run() -> list[BaseException | None]:
        sink = Sink()
        sink.fail = RuntimeError("exporter queue full")
        proc = _processor(sink, send_batch_size=6, timeout=Duration(3600))
        results = await asyncio.gather(
            *(proc.consume(Signal.TRACES, encode_spans(POOL[i : i + 2])) for i in (0, 2, 4)),
            return_exceptions=True,
        )
        return list(results)

    results = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) and "queue full" in str(r) for r in results)


def test_caller_split_across_batches_waits_for_all_of_them() -> None:
    async def run() -> None:
        sink = Sink()
        proc = _processor(sink, send_batch_size=5, send_batch_max_size=5, timeout=Duration(0.01))
        # 12 spans: two size-triggered batches of 5, the remainder of 2 waits for the timer.
        await asyncio.wait_for(proc.consume(Signal.TRACES, encode_spans(POOL[:12])), 5)
        assert [item_count(Signal.TRACES, b) for b in sink.batches] == [5, 5, 2]

    asyncio.run(run())


def test_shutdown_flushes_pending() -> None:
    async def run() -> None:
        sink = Sink()
        proc = _processor(sink, send_batch_size=1000, timeout=Duration(3600))
        task = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[:7])))
        await _wait_for(lambda: proc._pending and proc._pending[Signal.TRACES].items == 7)
        await proc.shutdown()
        await asyncio.wait_for(task, 5)
        assert [item_count(Signal.TRACES, b) for b in sink.batches] == [7]

    asyncio.run(run())


def test_metrics_split_by_data_points_keeps_metric_identity() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "m"}))
    counter = provider.get_meter("meter").create_counter("requests", unit="{request}")
    hist = provider.get_meter("meter").create_histogram("latency", unit="s")
    for i in range(7):
        counter.add(i + 1, {"route": f"/r{i}"})
        hist.record(0.1 * i, {"route": f"/r{i}"})
    data = reader.get_metrics_data()
    assert data is not None
    request = encode_metrics(data)
    original = {
        (m.name, m.WhichOneof("data"), tuple(kv.value.string_value for kv in p.attributes))
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in getattr(m, m.WhichOneof("data")).data_points
    }
    assert len(original) == 14

    async def run() -> Sink:
        sink = Sink()
        proc = BatchProcessor(
            CreateSettings(ComponentID("batch"), Signal.METRICS),
            BatchConfig(send_batch_size=3, send_batch_max_size=3),
            sink,
        )
        await proc.consume(Signal.METRICS, request)
        await proc.shutdown()
        return sink

    sink = asyncio.run(run())
    assert all(item_count(Signal.METRICS, b) <= 3 for b in sink.batches)
    seen = [
        (m.name, m.WhichOneof("data"), tuple(kv.value.string_value for kv in p.attributes))
        for b in sink.batches
        for rm in b.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in getattr(m, m.WhichOneof("data")).data_points
    ]
    assert sorted(seen) == sorted(original)
    out = [m for b in sink.batches for rm in b.resource_metrics for s in rm.scope_metrics for m in s.metrics]
    cumulative = 2
    requests = [m for m in out if m.name == "requests"]
    assert requests
    assert all(m.sum.is_monotonic and m.sum.aggregation_temporality == cumulative for m in requests)
    assert all(m.unit == "s" for m in out if m.name == "latency")


@pytest.mark.parametrize("timeout", [0.0, 0.2])
def test_immediate_mode_and_empty_requests(timeout: float) -> None:
    async def run() -> Sink:
        sink = Sink()
        proc = _processor(sink, send_batch_size=0 if timeout else 4, send_batch_max_size=4, timeout=timeout)
        await proc.consume(Signal.TRACES, encode_spans([]))
        await proc.consume(Signal.TRACES, encode_spans(POOL[:10]))
        return sink

    sink = asyncio.run(run())
    assert [item_count(Signal.TRACES, b) for b in sink.batches] == [4, 4, 2]


def test_flush_when_idle_sends_at_once_and_groups_what_arrives_meanwhile() -> None:
    async def run() -> None:
        sink = Sink()
        sink.gate = asyncio.Event()
        proc = _processor(sink, send_batch_size=10_000, timeout=Duration(3600), flush_when_idle=True)
        first = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[:3])))
        await _wait_for(lambda: proc._pending[Signal.TRACES].in_flight == 1)
        others = [asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[i : i + 2]))) for i in (3, 5, 7)]
        await _wait_for(lambda: proc._pending[Signal.TRACES].items == 6)
        assert not first.done()
        sink.gate.set()  # the first batch is accepted; the three waiting requests go out as one batch
        await asyncio.wait_for(asyncio.gather(first, *others), 5)
        assert [item_count(Signal.TRACES, b) for b in sink.batches] == [3, 6]

    asyncio.run(run())


def test_logs_are_batched_and_split_with_their_resource() -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    records: list[ReadableLogRecord] = []
    for service in ("a", "b"):
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=Resource.create({"service.name": service}))
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        for i in range(5):
            provider.get_logger("app").emit(severity_number=SeverityNumber.INFO, body=f"{service}{i}")
        records.extend(exporter.get_finished_logs())
    request = encode_logs(records)

    async def run() -> Sink:
        sink = Sink()
        proc = BatchProcessor(
            CreateSettings(ComponentID("batch"), Signal.LOGS),
            BatchConfig(send_batch_size=4, send_batch_max_size=4, timeout=Duration(0.01)),
            sink,
        )
        await asyncio.wait_for(proc.consume(Signal.LOGS, request), 5)
        return sink

    sink = asyncio.run(run())
    assert [item_count(Signal.LOGS, b) for b in sink.batches] == [4, 4, 2]
    seen = [
        (
            next(kv.value.string_value for kv in rl.resource.attributes if kv.key == "service.name"),
            r.body.string_value,
        )
        for b in sink.batches
        for rl in b.resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert sorted(seen) == sorted((s, f"{s}{i}") for s in "ab" for i in range(5))


def test_a_cancelled_caller_does_not_cancel_the_batch_for_the_others() -> None:
    async def run() -> None:
        sink = Sink()
        sink.gate = asyncio.Event()
        proc = _processor(sink, send_batch_size=4, timeout=Duration(3600))
        gone = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[:2])))
        stays = asyncio.create_task(proc.consume(Signal.TRACES, encode_spans(POOL[2:4])))
        await _wait_for(lambda: proc._pending[Signal.TRACES].in_flight == 1)
        gone.cancel()  # e.g. the client disconnected
        await asyncio.wait([gone], timeout=5)
        sink.gate.set()
        await asyncio.wait_for(stays, 5)
        assert gone.cancelled()
        assert [item_count(Signal.TRACES, b) for b in sink.batches] == [4]

    asyncio.run(run())

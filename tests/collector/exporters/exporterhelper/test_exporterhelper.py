"""QueuedExporter: queueing, retry with backoff, drops on DataError, refusal when full, metrics, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from collector.component import ComponentID, CreateSettings, DataError, RefusedError, RetryableError, Signal
from collector.confmap.sections import decode_section
from collector.exporters.exporterhelper import (
    BatchConfig,
    ExponentialBackoff,
    PersistentQueue,
    QueueConfig,
    QueuedExporter,
    RetryConfig,
)
from collector.exporters.exporterhelper.testing import StaticHost, span_names, trace_request
from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension
from processors.pipeline import Duration
from tests.support.sdk_data import attrs_of, metrics_in, number_points

FAST_RETRY = RetryConfig(initial_interval=Duration(0.001), max_interval=Duration(0.01), max_elapsed_time=Duration(5.0))


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.002)


async def started_file_storage(directory: Path) -> tuple[FileStorageExtension, StaticHost]:
    """A started ``file_storage`` extension in ``directory`` and a host that offers it to exporters."""
    storage = FileStorageExtension(
        CreateSettings(ComponentID("file_storage"), Signal.TRACES), FileStorageConfig(directory=str(directory))
    )
    host = StaticHost({ComponentID("file_storage"): storage})
    await storage.start(host)
    return storage, host


def metric_values(reader: InMemoryMetricReader) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in metrics_in(reader.get_metrics_data()):
        for dp in number_points(m):
            assert dict(attrs_of(dp)) == {"exporter": "otlp/test"}
            out[m.name] = dp.value
    return out


class Sink:
    """What the exporter's send callable talks to: fails according to a script, records what it accepted."""

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.failures = list(failures or [])
        self.received: list[str] = []
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    async def send(self, signal: Signal, request: Any) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.received.extend(span_names(request))


def make(
    send: Callable[[Signal, Any], Awaitable[None]],
    *,
    queue: QueueConfig | None = None,
    retry: RetryConfig = FAST_RETRY,
    meter_reader: InMemoryMetricReader | None = None,
    timeout: float = 5.0,
) -> QueuedExporter:
    settings = CreateSettings(ComponentID("otlp", "test"), Signal.TRACES)
    if meter_reader is not None:
        settings.meter = MeterProvider(metric_readers=[meter_reader]).get_meter("test")
    return QueuedExporter(settings, queue=queue or QueueConfig(), retry=retry, timeout=timeout, send=send)


def test_retryable_failures_are_retried_until_delivered() -> None:
    reader = InMemoryMetricReader()
    sink = Sink([RetryableError("unavailable"), ConnectionError("refused"), RuntimeError("boom")])

    async def run() -> None:
        exp = make(sink.send, meter_reader=reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("a", "b"))
        await wait_until(lambda: sink.received == ["a", "b"])
        assert exp.healthy()
        await exp.shutdown()

    asyncio.run(run())
    assert sink.attempts == 4
    values = metric_values(reader)
    assert values["otelcol_exporter_sent_spans"] == 2
    assert values.get("otelcol_exporter_send_failed_spans", 0) == 0


def test_data_error_is_dropped_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    sink = Sink([DataError("span name too long")])

    async def run() -> None:
        exp = make(sink.send, meter_reader=reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("bad1", "bad2", "bad3"))
        await exp.consume(Signal.TRACES, trace_request("good"))
        await wait_until(lambda: sink.received == ["good"])
        await exp.shutdown()

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert sink.attempts == 2  # never retried
    values = metric_values(reader)
    assert values["otelcol_exporter_send_failed_spans"] == 3
    assert values["otelcol_exporter_sent_spans"] == 1
    assert "span name too long" in caplog.text and "dropping 3 spans" in caplog.text


def test_unhealthy_while_failing_and_retry_after_is_honoured() -> None:
    sink = Sink([RetryableError("throttled", retry_after=0.2)])

    async def run() -> float:
        exp = make(sink.send)
        await exp.start(StaticHost())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await exp.consume(Signal.TRACES, trace_request("a"))
        await wait_until(lambda: sink.attempts >= 1)
        await wait_until(lambda: not exp.healthy() or bool(sink.received))
        was_unhealthy = not exp.healthy() or bool(sink.received)
        await wait_until(lambda: sink.received == ["a"])
        elapsed = loop.time() - t0
        assert was_unhealthy
        assert exp.healthy()
        await exp.shutdown()
        return elapsed

    # The backoff alone would retry after ~1 ms; the server asked for 200 ms.
    assert asyncio.run(run()) >= 0.2


def test_retries_exhausted_drops_and_counts() -> None:
    reader = InMemoryMetricReader()

    async def always_fail(signal: Signal, request: Any) -> None:
        raise RetryableError("down")

    retry = RetryConfig(initial_interval=Duration(0.001), max_interval=Duration(0.002), max_elapsed_time=Duration(0.05))

    async def run() -> QueuedExporter:
        exp = make(always_fail, retry=retry, meter_reader=reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("a", "b"))
        await wait_until(lambda: metric_values(reader).get("otelcol_exporter_send_failed_spans") == 2)
        assert not exp.healthy()
        await exp.shutdown()
        return exp

    exp = asyncio.run(run())
    assert exp.last_error is not None and "down" in exp.last_error


def test_full_queue_refuses_and_keeps_everything_accepted() -> None:
    reader = InMemoryMetricReader()
    sink = Sink()
    sink_gate = asyncio.Event

    async def run() -> None:
        sink.gate = sink_gate()
        exp = make(sink.send, queue=QueueConfig(num_consumers=1, queue_size=3), meter_reader=reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("in-flight"))
        await wait_until(lambda: sink.attempts == 1)  # the consumer holds it; the queue is empty again
        for i in range(3):
            await exp.consume(Signal.TRACES, trace_request(f"q{i}"))
        assert metric_values(reader)["otelcol_exporter_queue_size"] == 3
        assert metric_values(reader)["otelcol_exporter_queue_capacity"] == 3
        with pytest.raises(RefusedError, match="full"):
            await exp.consume(Signal.TRACES, trace_request("refused1", "refused2"))
        sink.gate.set()
        await wait_until(lambda: len(sink.received) == 4)
        await exp.shutdown()

    asyncio.run(run())
    assert sink.received == ["in-flight", "q0", "q1", "q2"]
    assert metric_values(reader)["otelcol_exporter_enqueue_failed_spans"] == 2


def test_block_on_overflow_waits_for_room() -> None:
    sink = Sink()

    async def run() -> None:
        sink.gate = asyncio.Event()
        exp = make(sink.send, queue=QueueConfig(num_consumers=1, queue_size=1, block_on_overflow=True))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("a"))
        await wait_until(lambda: sink.attempts == 1)
        await exp.consume(Signal.TRACES, trace_request("b"))
        blocked = asyncio.create_task(exp.consume(Signal.TRACES, trace_request("c")))
        await asyncio.sleep(0)  # let it reach the wait; it must not have been refused
        assert not blocked.done()
        sink.gate.set()
        await blocked
        await wait_until(lambda: len(sink.received) == 3)
        await exp.shutdown()

    asyncio.run(run())
    assert sink.received == ["a", "b", "c"]


def test_items_sizer_counts_spans() -> None:
    sink = Sink()

    async def run() -> None:
        sink.gate = asyncio.Event()
        exp = make(sink.send, queue=QueueConfig(num_consumers=1, queue_size=5, sizer="items"))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("x"))
        await wait_until(lambda: sink.attempts == 1)
        await exp.consume(Signal.TRACES, trace_request("a", "b", "c"))
        with pytest.raises(RefusedError):
            await exp.consume(Signal.TRACES, trace_request("d", "e", "f"))
        await exp.consume(Signal.TRACES, trace_request("d", "e"))
        sink.gate.set()
        await wait_until(lambda: len(sink.received) == 6)
        await exp.shutdown()

    asyncio.run(run())


def test_no_queue_sends_inline_and_raises_the_final_error() -> None:
    sink = Sink([RetryableError("blip")])

    async def run() -> None:
        exp = make(sink.send, queue=QueueConfig(enabled=False))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("a"))
        assert sink.received == ["a"]  # delivered before consume returned
        sink.failures = [DataError("bad")]
        with pytest.raises(DataError):
            await exp.consume(Signal.TRACES, trace_request("b"))
        await exp.shutdown()

    asyncio.run(run())


def test_send_timeout_is_retried() -> None:
    calls = 0

    async def slow_once(signal: Signal, request: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # never answers

    async def run() -> None:
        exp = make(slow_once, timeout=0.05)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, trace_request("a"))
        await wait_until(lambda: calls == 2 and exp.healthy())
        await exp.shutdown()

    asyncio.run(run())


def test_memory_queue_drains_on_shutdown() -> None:
    sink = Sink()

    async def run() -> None:
        exp = make(sink.send, queue=QueueConfig(num_consumers=2))
        await exp.start(StaticHost())
        for i in range(50):
            await exp.consume(Signal.TRACES, trace_request(f"s{i}"))
        await exp.shutdown()
        with pytest.raises(RefusedError):
            await exp.consume(Signal.TRACES, trace_request("late"))

    asyncio.run(run())
    assert sorted(sink.received) == sorted(f"s{i}" for i in range(50))


def test_persistent_queue_keeps_undelivered_across_restart_without_duplicates(tmp_path: Path) -> None:
    """Clean shutdown while the peer refuses part of the data: nothing lost, nothing delivered twice."""
    delivered: Counter[str] = Counter()
    accept_up_to = 10  # the peer takes s0..s9 in the first run and refuses the rest

    async def send(signal: Signal, request: Any) -> None:
        names = span_names(request)
        if any(int(n[1:]) >= accept_up_to for n in names):
            raise RetryableError("peer down")
        for name in names:
            delivered[name] += 1

    async def run_once(n_new: int, first: int) -> QueuedExporter:
        _ext, host = await started_file_storage(tmp_path)
        forever = RetryConfig(
            initial_interval=Duration(0.001), max_interval=Duration(0.01), max_elapsed_time=Duration(0.0)
        )
        exp = make(send, queue=QueueConfig(storage="file_storage", num_consumers=3), retry=forever)
        await exp.start(host)
        for i in range(first, first + n_new):
            await exp.consume(Signal.TRACES, trace_request(f"s{i}"))
        return exp

    async def run() -> None:
        nonlocal accept_up_to
        exp = await run_once(30, 0)
        await wait_until(lambda: len(delivered) == 10)
        await exp.shutdown()  # three consumers stop mid-retry: their items stay on disk with the queued ones
        accept_up_to = 1000
        exp2 = await run_once(10, 30)
        assert exp2.recovered == 20
        await wait_until(lambda: len(delivered) == 40)
        await exp2.shutdown()

    asyncio.run(run())
    assert set(delivered) == {f"s{i}" for i in range(40)}
    assert max(delivered.values()) == 1, [k for k, v in delivered.items() if v > 1]


def test_backoff_grows_with_jitter_and_gives_up() -> None:
    import random

    cfg = RetryConfig(
        initial_interval=Duration(1.0), multiplier=2.0, randomization_factor=0.5, max_interval=Duration(4.0)
    )
    b = ExponentialBackoff(cfg, rng=random.Random(1))
    delays = [d for d in (b.next_delay() for _ in range(5)) if d is not None]
    assert len(delays) == 5  # no give-up yet
    assert all(d is not None for d in delays)
    assert 0.5 <= delays[0] <= 1.5 and 1.0 <= delays[1] <= 3.0
    assert all(2.0 <= d <= 6.0 for d in delays[2:])
    assert b.next_delay(retry_after=30.0) == 30.0
    gives_up = ExponentialBackoff(RetryConfig(max_elapsed_time=Duration(1.0)))
    assert gives_up.next_delay() is None  # 5 s +/- 50 % is past the 1 s budget


def test_config_defaults_match_upstream_and_validate() -> None:
    r, q = RetryConfig(), QueueConfig()
    assert (r.enabled, r.initial_interval, r.randomization_factor, r.multiplier, r.max_interval) == (
        True,
        5.0,
        0.5,
        1.5,
        30.0,
    )
    assert r.max_elapsed_time == 300.0
    assert (q.enabled, q.num_consumers, q.queue_size, q.sizer, q.storage) == (
        True,
        10,
        1000,
        "requests",
        None,
    )
    assert QueueConfig(num_consumers=0).validate()[0].startswith("sending_queue::num_consumers")
    errors: list[str] = []
    decode_section(RetryConfig, {"multiplier": 0.5}, "exporters.otlp.retry_on_failure", errors)
    assert errors == ["exporters.otlp.retry_on_failure.multiplier: must be >= 1, got 0.5"]


def test_batch_defaults_match_upstream_and_validate() -> None:
    b = BatchConfig()
    assert (b.flush_timeout, b.min_size, b.max_size, b.sizer) == (0.2, 8192, 0, "items")
    assert QueueConfig().batch is None  # batching is opt-in, as upstream
    errors = QueueConfig(batch=BatchConfig(min_size=10, max_size=5)).validate()
    assert errors == ["sending_queue::batch::max_size: must be >= min_size (10) or 0, got 5"]
    assert QueueConfig(batch=BatchConfig(min_size=10, max_size=-5)).validate() == []  # max_size's own bound: below
    errors = []
    decode_section(BatchConfig, {"flush_timeout": 0, "max_size": -5}, "exporters.otlp.sending_queue.batch", errors)
    assert errors == [
        "exporters.otlp.sending_queue.batch.flush_timeout: must be > 0, got 0.0",
        "exporters.otlp.sending_queue.batch.max_size: must be >= 0, got -5",
    ]


def test_batch_merges_queued_requests_into_one_send() -> None:
    """Without a batch send function, a batch goes out as one request (the requests' resources concatenated)."""
    reader = InMemoryMetricReader()
    sink = Sink()

    async def run() -> None:
        batch = BatchConfig(min_size=5, flush_timeout=Duration(30.0))
        exp = make(sink.send, queue=QueueConfig(num_consumers=1, batch=batch), meter_reader=reader)
        await exp.start(StaticHost())
        for names in (("a", "b"), ("c", "d"), ("e", "f")):
            await exp.consume(Signal.TRACES, trace_request(*names))
        await wait_until(lambda: len(sink.received) == 6)  # reached min_size: sent long before flush_timeout
        await exp.shutdown()

    asyncio.run(run())
    assert sink.attempts == 1
    assert sink.received == ["a", "b", "c", "d", "e", "f"]
    assert metric_values(reader)["otelcol_exporter_sent_spans"] == 6


def test_batch_send_gets_whole_requests_within_max_size_and_flushes_on_timeout() -> None:
    batches: list[list[list[str]]] = []
    failures: list[BaseException] = [RetryableError("database restarting")]

    async def send_batch(signal: Signal, requests: Sequence[Any]) -> None:
        if failures:
            raise failures.pop(0)
        batches.append([span_names(r) for r in requests])

    async def send(signal: Signal, request: Any) -> None:
        await send_batch(signal, [request])

    async def run() -> None:
        batch = BatchConfig(min_size=4, max_size=4, flush_timeout=Duration(0.05))
        settings = CreateSettings(ComponentID("postgres"), Signal.TRACES)
        exp = QueuedExporter(
            settings,
            queue=QueueConfig(num_consumers=1, batch=batch),
            retry=FAST_RETRY,
            timeout=5.0,
            send=send,
            send_batch=send_batch,
        )
        await exp.start(StaticHost())
        for names in (("a", "b"), ("c",), ("d", "e"), ("f",)):
            await exp.consume(Signal.TRACES, trace_request(*names))
        # a+c is 3 spans; d+e would make 5 > max_size, so it starts the next batch; d+e+f is below min_size
        # and goes out when flush_timeout expires.
        await wait_until(lambda: sum(len(n) for b in batches for n in b) == 6)
        await exp.shutdown()

    asyncio.run(run())
    assert batches == [[["a", "b"], ["c"]], [["d", "e"], ["f"]]]  # the failed first attempt was retried whole


def test_batched_persistent_items_are_acknowledged_only_after_their_batch(tmp_path: Path) -> None:
    async def run(sink: Sink, names: list[tuple[str, ...]]) -> int:
        storage, host = await started_file_storage(tmp_path)
        batch = BatchConfig(min_size=100, flush_timeout=Duration(0.05))
        exp = make(sink.send, queue=QueueConfig(num_consumers=1, storage="file_storage", batch=batch))
        await exp.start(host)
        recovered = exp.recovered
        for n in names:
            await exp.consume(Signal.TRACES, trace_request(*n))
        if names or recovered:
            await wait_until(lambda: sink.attempts >= 1)
        await exp.shutdown()
        await storage.shutdown()
        return recovered

    failing = Sink([RetryableError("down")] * 1000)  # never delivers: everything must survive the restart
    asyncio.run(run(failing, [("a", "b"), ("c",)]))
    healthy = Sink()
    assert asyncio.run(run(healthy, [])) == 2
    assert healthy.received == ["a", "b", "c"] and healthy.attempts == 1  # re-delivered from disk, as one batch
    assert asyncio.run(run(Sink(), [])) == 0  # acknowledged after the batch: nothing re-delivered twice


def test_persistent_items_hold_bytes_and_reach_send_payloads_as_they_are(tmp_path: Path) -> None:
    """A persistent queue keeps the serialized request (what it wrote to disk), not the decoded message, and hands
    those bytes to an exporter that takes them (e.g. to pass to another process without re-encoding)."""
    got: list[list[bytes]] = []
    requests = [trace_request("a", "b"), trace_request("c")]

    async def send(signal: Signal, request: Any) -> None:
        raise AssertionError("send_payloads should have been used")

    async def send_payloads(signal: Signal, payloads: Sequence[bytes]) -> None:
        got.append(list(payloads))

    async def run() -> None:
        storage, host = await started_file_storage(tmp_path)
        exp = QueuedExporter(
            CreateSettings(ComponentID("postgres"), Signal.TRACES),
            queue=QueueConfig(num_consumers=1, storage="file_storage", batch=BatchConfig(min_size=3)),
            retry=FAST_RETRY,
            timeout=5.0,
            send=send,
            send_payloads=send_payloads,
        )
        await exp.start(host)
        for request in requests:
            await exp.consume(Signal.TRACES, request)
        await wait_until(lambda: bool(got))
        await exp.shutdown()
        await storage.shutdown()

    asyncio.run(run())
    assert got == [[r.SerializeToString() for r in requests]]


def test_persistent_queue_items_keep_no_decoded_request(tmp_path: Path) -> None:
    async def run() -> None:
        storage, _host = await started_file_storage(tmp_path)
        store = await storage.client(ComponentID("postgres"), "traces")
        queue = PersistentQueue(store, 10, "items", False)
        await queue.start()
        await queue.put(Signal.TRACES, trace_request("a", "b"))
        item = await queue.get()
        assert item.decoded is None and item.items == 2 and item.size == 2
        assert span_names(item.request) == ["a", "b"]  # decoded on demand
        await queue.close()
        await storage.shutdown()

    asyncio.run(run())

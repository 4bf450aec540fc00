"""The ``batch`` processor: merge requests into batches sent on size or timeout.

Config as upstream's ``batchprocessor``: ``send_batch_size`` (a trigger: a batch is sent once this many
items are pending), ``send_batch_max_size`` (an upper bound; larger batches are split, 0 = no bound),
``timeout`` (a pending batch is sent this long after its first item arrived). ``timeout: 0`` or
``send_batch_size: 0`` sends each request immediately (still split to ``send_batch_max_size``).
``metadata_keys`` and ``metadata_cardinality_limit`` are accepted for config compatibility but ignored:
consumers here receive no request metadata.

Durability (ARCHITECTURE decision 3): unlike upstream, where ``ConsumeTraces`` returns as soon as the data
is in the batcher, ``consume`` here returns only when every batch holding some of the caller's items has
been accepted by the next consumer, and raises that consumer's exception if one of them failed. A receiver
therefore still acknowledges only data that is durable downstream. Each batch is sent from its own task, so
a caller that goes away (client disconnect) cannot cancel a batch other callers are waiting on.

That contract makes a caller wait up to ``timeout`` when traffic is light, so throughput is bounded by
(concurrent requests x request size) / timeout. ``flush_when_idle: true`` (our own key, absent upstream)
turns the processor into a group commit: whatever is pending is also sent as soon as no batch is in flight,
so batches grow with downstream latency and load instead of with waiting; size, max size and timeout still
apply.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from processors.pdata import merge_into, take_items
from processors.pipeline import (
    Consumer,
    CreateSettings,
    Duration,
    Processor,
    ProcessorFactory,
    Request,
    Signal,
    changing,
    item_count,
)

__all__ = ["BatchConfig", "BatchProcessor", "factories"]

TYPE = "batch"
DEFAULT_SEND_BATCH_SIZE = 8192
DEFAULT_SEND_BATCH_MAX_SIZE = 0
DEFAULT_TIMEOUT = Duration(0.2)
DEFAULT_METADATA_CARDINALITY_LIMIT = 1000
DEFAULT_FLUSH_WHEN_IDLE = False


@dataclass
class BatchConfig:
    # A pending batch is sent this long after its first item arrived; 0: every request is sent at once.
    timeout: Duration = DEFAULT_TIMEOUT
    # A batch is sent as soon as this many items (spans, data points, log records) are pending.
    send_batch_size: int = DEFAULT_SEND_BATCH_SIZE
    # Upper bound on a batch's items: larger requests are split; 0: no bound.
    send_batch_max_size: int = DEFAULT_SEND_BATCH_MAX_SIZE
    # Accepted for upstream compatibility and ignored: consumers here receive no request metadata.
    metadata_keys: list[str] = field(default_factory=list)
    # Accepted for upstream compatibility and ignored (see metadata_keys).
    metadata_cardinality_limit: int = DEFAULT_METADATA_CARDINALITY_LIMIT
    # Not an upstream key (see the module docstring): send what is pending whenever nothing is in flight.
    flush_when_idle: bool = DEFAULT_FLUSH_WHEN_IDLE

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.timeout < 0:
            errors.append(f"timeout: must not be negative, got {self.timeout}s")
        if self.send_batch_size < 0:
            errors.append(f"send_batch_size: must not be negative, got {self.send_batch_size}")
        if self.send_batch_max_size < 0:
            errors.append(f"send_batch_max_size: must not be negative, got {self.send_batch_max_size}")
        elif 0 < self.send_batch_max_size < self.send_batch_size:
            errors.append(
                f"send_batch_max_size: must be greater than or equal to send_batch_size "
                f"({self.send_batch_max_size} < {self.send_batch_size})"
            )
        if self.metadata_cardinality_limit < 0:
            errors.append("metadata_cardinality_limit: must not be negative")
        return errors


class _Waiter:
    """One ``consume`` call: resolved when none of its items is pending or in flight any more."""

    __slots__ = ("error", "future", "in_flight", "unsent")

    def __init__(self, future: asyncio.Future[None], items: int) -> None:
        self.future = future
        self.unsent = items
        self.in_flight = 0
        self.error: BaseException | None = None


@dataclass
class _Piece:
    request: Request
    items: int
    waiter: _Waiter


@dataclass
class _Pending:
    pieces: deque[_Piece] = field(default_factory=deque)
    items: int = 0
    timer: asyncio.TimerHandle | None = None
    in_flight: int = 0  # batches sent and not yet answered


class BatchProcessor(Processor):
    reports_changes = True  # merging into a request or taking items from it

    def __init__(self, settings: CreateSettings, config: BatchConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._timeout = float(config.timeout)
        self._size = config.send_batch_size
        self._max = config.send_batch_max_size
        self._immediate = self._timeout <= 0 or self._size <= 0
        self._flush_when_idle = config.flush_when_idle
        self._pending: dict[Signal, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        meter = settings.meter
        self._attrs = {"processor": str(settings.id)}
        self._send_size = meter.create_histogram(
            "otelcol_processor_batch_batch_send_size", unit="{item}", description="Items per batch sent"
        )
        self._size_triggers = meter.create_counter(
            "otelcol_processor_batch_batch_size_trigger_send", description="Batches sent because of size"
        )
        self._timeout_triggers = meter.create_counter(
            "otelcol_processor_batch_timeout_trigger_send", description="Batches sent because of the timeout"
        )

    async def consume(self, signal: Signal, request: Request) -> None:
        n = item_count(signal, request)
        if n == 0:
            return
        if self._immediate or self._stopped:
            await self._send_now(signal, request, n)
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), n)
        pending = self._pending.setdefault(signal, _Pending())
        pending.pieces.append(_Piece(request, n, waiter))
        pending.items += n
        if pending.items >= self._size:
            # As upstream: send full batches while the size trigger holds; a remainder waits for the timer.
            while pending.items >= self._size:
                self._emit(signal, pending)
                self._size_triggers.add(1, self._attrs)
            if pending.timer is not None:
                pending.timer.cancel()
                pending.timer = None
        if self._flush_when_idle and pending.in_flight == 0:
            self._emit_all(signal, pending)
        if pending.items and pending.timer is None:
            pending.timer = loop.call_later(self._timeout, self._on_timeout, signal)
        await waiter.future

    async def shutdown(self) -> None:
        """Send everything pending and wait until every batch in flight has been answered."""
        self._stopped = True
        for signal, pending in self._pending.items():
            self._emit_all(signal, pending)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- internals ------------------------------------------------------------------------------------------

    async def _send_now(self, signal: Signal, request: Request, n: int) -> None:
        if self._max and n > self._max:
            changing(request)
        while self._max and n > self._max:
            await self.next_consumer.consume(signal, take_items(signal, request, self._max))
            self._send_size.record(self._max, self._attrs)
            n -= self._max
        await self.next_consumer.consume(signal, request)
        self._send_size.record(n, self._attrs)

    def _on_timeout(self, signal: Signal) -> None:
        pending = self._pending[signal]
        pending.timer = None
        while pending.items:
            self._emit(signal, pending)
            self._timeout_triggers.add(1, self._attrs)

    def _emit_all(self, signal: Signal, pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        while pending.items:
            self._emit(signal, pending)

    def _emit(self, signal: Signal, pending: _Pending) -> None:
        """Take up to ``send_batch_max_size`` pending items into one batch and send it from a task."""
        limit = self._max or pending.items
        batch: Request | None = None
        waiters: list[_Waiter] = []
        taken = 0
        while pending.pieces and taken < limit:
            piece = pending.pieces[0]
            room = limit - taken
            if piece.items <= room:
                pending.pieces.popleft()
                part, k = piece.request, piece.items
            else:
                changing(piece.request)
                part, k = take_items(signal, piece.request, room), room
                piece.items -= room
            if batch is None:
                batch = part  # the first request becomes the batch: one copy fewer
            else:
                changing(batch)
                merge_into(signal, batch, part)
            piece.waiter.unsent -= k
            piece.waiter.in_flight += 1
            waiters.append(piece.waiter)
            taken += k
        pending.items -= taken
        if batch is None:
            return
        self._send_size.record(taken, self._attrs)
        pending.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(signal, batch, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, signal: Signal, batch: Request, waiters: list[_Waiter]) -> None:
        error: BaseException | None = None
        try:
            await self.next_consumer.consume(signal, batch)
        except BaseException as exc:  # every caller in the batch gets it, including cancellation
            error = exc
        for waiter in waiters:
            waiter.in_flight -= 1
            if error is not None and waiter.error is None:
                waiter.error = error
            if waiter.in_flight == 0 and waiter.unsent == 0 and not waiter.future.done():
                if isinstance(waiter.error, asyncio.CancelledError):
                    waiter.future.cancel()
                elif waiter.error is not None:
                    waiter.future.set_exception(waiter.error)
                else:
                    waiter.future.set_result(None)
        pending = self._pending[signal]
        pending.in_flight -= 1
        if self._flush_when_idle and pending.in_flight == 0 and pending.items:
            # Group commit: what arrived while the last batch was in flight goes out now.
            self._emit_all(signal, pending)
        if isinstance(error, asyncio.CancelledError):
            raise error


factories = (ProcessorFactory(type=TYPE, config_type=BatchConfig, create=BatchProcessor),)

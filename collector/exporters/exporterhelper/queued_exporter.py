"""QueuedExporter: sending queue + consumers (+ batching) + retry with backoff + timeout + the Collector's
exporter metrics.

An exporter supplies only ``send(signal, request)`` (and optionally ``send_batch`` for several at once), raising
RetryableError for transient failures and DataError for data the peer will never accept; everything else
(queueing, batching, durability, retries, metrics, health) lives here, as in the upstream exporterhelper.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypedDict, TypeVar

from opentelemetry.metrics import CallbackOptions, Observation

from collector.component import (
    ComponentID,
    CreateSettings,
    DataError,
    Exporter,
    Host,
    RefusedError,
    Request,
    RetryableError,
    Signal,
    item_count,
)
from collector.extensions.file_storage import FileStorageExtension, QueueStoreError
from processors.pipeline import item_counters, new_request

from .backoff import ExponentialBackoff
from .config import BatchConfig, QueueConfig, RetryConfig, SenderConfig
from .queue import MemoryQueue, PersistentQueue, QueueItem, SendingQueue

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "BatchSendFunc",
    "PayloadSendFunc",
    "QueuedExporter",
    "SendFunc",
    "SenderOptions",
    "sender_options",
]

SendFunc = Callable[[Signal, Request], Awaitable[None]]
# Sends several requests as one (``sending_queue::batch``), e.g. one database transaction for all of them.
BatchSendFunc = Callable[[Signal, Sequence[Request]], Awaitable[None]]
# Sends requests given as their protobuf bytes (what a persistent queue holds), e.g. to another process as they are.
PayloadSendFunc = Callable[[Signal, Sequence[bytes]], Awaitable[None]]


@dataclass
class _Outgoing:
    """What one send attempt delivers: decoded requests, or the persistent queue's bytes decoded only if needed."""

    items: int
    decoded: Sequence[Request] | None = None
    queued: Sequence[QueueItem] = ()

    @property
    def payloads(self) -> list[bytes] | None:
        """The queued bytes of every request, if they all have them."""
        if self.decoded is not None:
            return None
        payloads = [item.payload for item in self.queued if item.payload is not None]
        return payloads if len(payloads) == len(self.queued) else None

    def requests(self) -> Sequence[Request]:
        return self.decoded if self.decoded is not None else [item.request for item in self.queued]


_T = TypeVar("_T")


class SenderOptions(TypedDict):
    queue: QueueConfig
    retry: RetryConfig
    timeout: float


def sender_options(config: SenderConfig) -> SenderOptions:
    """QueuedExporter's ``queue``, ``retry`` and ``timeout`` from the config keys every exporter shares, so an
    exporter passes its config once: ``QueuedExporter(settings, **sender_options(config), send=...)``."""
    return SenderOptions(queue=config.sending_queue, retry=config.retry_on_failure, timeout=config.timeout)


# How long shutdown() keeps draining an in-memory queue before giving up on what is left.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


# Errors that are expected transient failures; anything else is retried too but logged with its traceback.
_RETRYABLE_TYPES = (RetryableError, TimeoutError, ConnectionError, OSError)


class QueuedExporter(Exporter):
    def __init__(
        self,
        settings: CreateSettings,
        *,
        queue: QueueConfig,
        retry: RetryConfig,
        timeout: float,
        send: SendFunc,
        send_batch: BatchSendFunc | None = None,
        send_payloads: PayloadSendFunc | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.queue_config = queue
        self.retry_config = retry
        self.timeout = timeout
        self._send = send
        self._send_batch = send_batch
        self._send_payloads = send_payloads
        self._shutdown_timeout = shutdown_timeout
        self._log = settings.logger
        self._queue: SendingQueue | None = None
        self._resources = contextlib.AsyncExitStack()
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._stopping = False
        self._consecutive_failures = 0
        self.last_error: str | None = None
        self._attrs = {"exporter": str(settings.id)}
        meter = settings.meter
        self._sent = item_counters(
            meter, "otelcol_exporter_sent_{items}", "Number of {items} successfully sent to destination."
        )
        self._send_failed = item_counters(
            meter,
            "otelcol_exporter_send_failed_{items}",
            "Number of {items} in failed attempts to send to destination.",
        )
        self._enqueue_failed = item_counters(
            meter,
            "otelcol_exporter_enqueue_failed_{items}",
            "Number of {items} failed to be added to the sending queue.",
        )
        if queue.enabled:
            meter.create_observable_gauge(
                "otelcol_exporter_queue_size",
                callbacks=[self._observe_size],
                unit="{" + queue.sizer + "}",
                description="Current size of the retry queue (in the sizer's unit).",
            )
            meter.create_observable_gauge(
                "otelcol_exporter_queue_capacity",
                callbacks=[self._observe_capacity],
                unit="{" + queue.sizer + "}",
                description="Fixed capacity of the retry queue (in the sizer's unit).",
            )

    # ---- metrics -------------------------------------------------------------------------------------------
    def _observe_size(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.queue_size, self._attrs)]

    def _observe_capacity(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.queue_config.queue_size, self._attrs)]

    @property
    def queue_size(self) -> int:
        return self._queue.size if self._queue is not None else 0

    @property
    def queue_capacity(self) -> int:
        return self.queue_config.queue_size

    @property
    def recovered(self) -> int:
        """Requests re-delivered from disk at start (persistent queue)."""
        return self._queue.recovered if isinstance(self._queue, PersistentQueue) else 0

    # ---- lifecycle -----------------------------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        cfg = self.queue_config
        if not cfg.enabled:
            return
        if cfg.storage:
            storage_id = ComponentID.parse(cfg.storage)
            try:
                extension = host.get_extension(storage_id)
            except KeyError:
                raise ValueError(
                    f"exporters::{self.settings.id}::sending_queue::storage: extension {storage_id} is not configured"
                ) from None
            if not isinstance(extension, FileStorageExtension):
                raise ValueError(
                    f"exporters::{self.settings.id}::sending_queue::storage: "
                    f"{storage_id} is not a file_storage extension"
                )
            store = await extension.client(self.settings.id, self.settings.signal.value)
            self._queue = PersistentQueue(store, cfg.queue_size, cfg.sizer, cfg.block_on_overflow)
        else:
            self._queue = MemoryQueue(cfg.queue_size, cfg.sizer, cfg.block_on_overflow)
        await self._queue.start()
        self._consumers = [
            asyncio.create_task(self._consume_loop(), name=f"{self.settings.id}-consumer-{i}")
            for i in range(cfg.num_consumers)
        ]

    async def closing(self, resource: AbstractAsyncContextManager[_T]) -> _T:
        """Enter ``resource`` (a client, a channel) and keep it open until ``shutdown``, which closes it once the
        queue has drained."""
        return await self._resources.enter_async_context(resource)

    async def shutdown(self) -> None:
        self._stopping = True
        try:
            await self._drain()
        finally:
            await self._resources.aclose()

    async def _drain(self) -> None:
        queue = self._queue
        if queue is None:
            return
        if isinstance(queue, MemoryQueue):
            # Nothing survives the process: give what is queued a bounded chance to go out.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._shutdown_timeout
            while (not queue.empty() or self._in_flight) and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if not queue.empty():
                self._log.warning(
                    "exporter %s: shutting down with %d queued requests undelivered",
                    self.settings.id,
                    queue.size,
                )
        # Persistent: in-flight sends are cancelled and stay unacknowledged on disk for the next run.
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers = []
        await queue.close()
        self._queue = None

    def healthy(self) -> bool:
        return self._consecutive_failures == 0

    # ---- data path -----------------------------------------------------------------------------------------
    async def consume(self, signal: Signal, request: Request) -> None:
        if not self.queue_config.enabled:
            # No queue: the caller waits for the send (with retries) and sees its failure.
            await self._send_with_retry(
                signal, _Outgoing(item_count(signal, request), decoded=[request]), raise_on_drop=True
            )
            return
        queue = self._queue
        if queue is None or self._stopping:
            self._enqueue_failed[signal].add(item_count(signal, request), self._attrs)
            raise RefusedError(f"exporter {self.settings.id} is not running")
        try:
            await queue.put(signal, request)
        except RefusedError:
            self._enqueue_failed[signal].add(item_count(signal, request), self._attrs)
            raise
        except QueueStoreError as exc:
            self._enqueue_failed[signal].add(item_count(signal, request), self._attrs)
            raise RefusedError(f"exporter {self.settings.id}: persistent queue write failed: {exc}") from exc

    async def _consume_loop(self) -> None:
        queue = self._queue
        assert queue is not None
        batch = self.queue_config.batch
        carry: QueueItem | None = None  # taken from the queue but beyond the last batch's max_size
        while True:
            first = carry or await queue.get()
            carry = None
            self._in_flight += 1
            try:
                items = [first]
                if batch is not None:
                    carry = await self._fill(queue, batch, items)
                await self._deliver(queue, items)
            finally:
                self._in_flight -= 1

    async def _fill(self, queue: SendingQueue, batch: BatchConfig, items: list[QueueItem]) -> QueueItem | None:
        """Take more items into ``items`` up to the batch's size or time limit; returns an item taken that did
        not fit (the first of the next batch)."""
        size_of = _BATCH_SIZERS[batch.sizer]
        size = size_of(items[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + batch.flush_timeout
        while size < batch.min_size:
            item = queue.get_nowait()
            if item is None:
                remaining = deadline - loop.time()
                item = await queue.get_within(remaining) if remaining > 0 else None
                if item is None:
                    break
            n = size_of(item)
            if batch.max_size and size + n > batch.max_size:
                return item
            items.append(item)
            size += n
        return None

    async def _deliver(self, queue: SendingQueue, items: list[QueueItem]) -> None:
        count = sum(item.items for item in items)
        decoded = [item.decoded for item in items if item.decoded is not None]
        outgoing = _Outgoing(count, decoded=decoded) if len(decoded) == len(items) else _Outgoing(count, queued=items)
        try:
            await self._send_with_retry(items[0].signal, outgoing, raise_on_drop=False)
        except asyncio.CancelledError:
            raise  # not acknowledged: persistent items stay on disk
        except Exception:  # pragma: no cover - _send_with_retry handles everything; never kill a consumer
            self._log.exception("exporter %s: unexpected error delivering a request", self.settings.id)
        for item in items:
            try:
                queue.ack(item)
            except Exception:  # a consumer that dies stops delivery until a restart: log it, keep consuming
                self._log.exception("exporter %s: recording a delivery failed", self.settings.id)

    async def _send_requests(self, signal: Signal, outgoing: _Outgoing) -> None:
        if self._send_payloads is not None:
            payloads = outgoing.payloads
            if payloads is not None:
                await self._send_payloads(signal, payloads)
                return
        requests = outgoing.requests()
        if len(requests) == 1:
            await self._send(signal, requests[0])
        elif self._send_batch is not None:
            await self._send_batch(signal, requests)
        else:  # OTLP requests merge by concatenating their resource lists
            merged = new_request(signal)
            for request in requests:
                merged.MergeFrom(request)
            await self._send(signal, merged)

    async def _send_with_retry(self, signal: Signal, outgoing: _Outgoing, *, raise_on_drop: bool) -> None:
        backoff = ExponentialBackoff(self.retry_config)
        attempt = 0
        while True:
            attempt += 1
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races with
                # the send finishing, which would keep a consumer retrying after shutdown.
                async with asyncio.timeout(self.timeout if self.timeout > 0 else None):
                    await self._send_requests(signal, outgoing)
            except asyncio.CancelledError:
                raise
            except DataError as exc:
                # The peer will never take this data: drop it, count it, say why.
                self._consecutive_failures = 0
                self._record_drop(signal, outgoing.items, f"rejected as invalid: {exc}")
                if raise_on_drop:
                    raise
                return
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                self._consecutive_failures += 1
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if isinstance(exc, TimeoutError):
                    reason = f"timed out after {self.timeout}s"
                self.last_error = reason
                if not isinstance(exc, _RETRYABLE_TYPES):
                    self._log.debug("exporter %s: unexpected send error", self.settings.id, exc_info=True)
                delay = backoff.next_delay(getattr(exc, "retry_after", None)) if self.retry_config.enabled else None
                if delay is None:
                    why = "retries exhausted" if self.retry_config.enabled else "retry_on_failure disabled"
                    self._record_drop(signal, outgoing.items, f"{why} after {attempt} attempts; last error: {reason}")
                    if raise_on_drop:
                        raise
                    return
                self._log.info("exporter %s: send failed (%s); retrying in %.2fs", self.settings.id, reason, delay)
                await asyncio.sleep(delay)
                continue
            self._consecutive_failures = 0
            self.last_error = None
            self._sent[signal].add(outgoing.items, self._attrs)
            return

    def _record_drop(self, signal: Signal, n: int, reason: str) -> None:
        self._send_failed[signal].add(n, self._attrs)
        self._log.error("exporter %s: dropping %d %s: %s", self.settings.id, n, signal.item_name, reason)


_BATCH_SIZERS: dict[str, Callable[[QueueItem], int]] = {
    "items": lambda item: item.items,
    "requests": lambda _item: 1,
    "bytes": lambda item: len(item.payload) if item.payload is not None else item.request.ByteSize(),
}

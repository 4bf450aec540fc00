"""Sending queues: in memory, or persistent on a ``file_storage`` segment queue.

Both bound what waits to be sent by ``queue_size`` (in the configured sizer's unit) and refuse (RefusedError,
retryable) when full, so accepted data is never dropped for lack of room. ``put`` returns once the item is
queued;
for the persistent queue that means written and fsync'ed (group-committed with concurrent puts).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from collector.extensions.file_storage import SegmentQueue, StoredRecord
from processors.pipeline import RefusedError, Request, Signal, item_count, parse_request, serialized

from .config import Sizer

__all__ = ["MemoryQueue", "PersistentQueue", "QueueItem", "SendingQueue", "decode_payload"]

_log = logging.getLogger("otel_metrics.collector.exporterhelper")

# One byte in front of the protobuf says which request message follows.
_SIGNAL_CODES = {Signal.TRACES: 1, Signal.METRICS: 2, Signal.LOGS: 3}
_CODE_SIGNALS = {v: k for k, v in _SIGNAL_CODES.items()}
_REFUSE_RETRY_AFTER = 1.0


def _framed(signal: Signal, body: bytes) -> bytes:
    return bytes((_SIGNAL_CODES[signal],)) + body


def decode_payload(payload: bytes) -> tuple[Signal, Request]:
    if not payload or payload[0] not in _CODE_SIGNALS:
        raise ValueError(f"unknown signal code {payload[:1]!r}")
    signal = _CODE_SIGNALS[payload[0]]
    return signal, parse_request(signal, payload[1:])


@dataclass
class QueueItem:
    """A queued request. Persistent items keep only their serialized form (``payload``, as written to disk): a few
    times smaller in memory than the decoded message, and what a write process takes as it is."""

    signal: Signal
    size: int  # in the queue's sizer unit
    items: int  # spans, metric points or log records
    record: StoredRecord | None = None  # set for items of a persistent queue
    decoded: Request | None = None
    payload: bytes | None = None  # the OTLP request's protobuf bytes

    @property
    def request(self) -> Request:
        """The request (persistent items: decoded on every call, and not kept)."""
        if self.decoded is not None:
            return self.decoded
        assert self.payload is not None
        return parse_request(self.signal, self.payload)


def _sizer(kind: Sizer) -> Callable[[Signal, Request], int]:
    if kind == "items":
        return item_count
    if kind == "bytes":
        return lambda _signal, request: request.ByteSize()
    return lambda _signal, _request: 1


class SendingQueue(abc.ABC):
    def __init__(self, capacity: int, sizer: Sizer, block_on_overflow: bool) -> None:
        self.capacity = capacity
        self._sizer_kind = sizer
        self._size_of = _sizer(sizer)
        self._block = block_on_overflow
        self._items: asyncio.Queue[QueueItem] = asyncio.Queue()
        self._size = 0  # queued, not yet handed to a consumer
        self._reserved = 0  # being written to disk
        # Set when a consumer takes an item: producers blocked on a full queue re-check for room. An Event, not a
        # Condition: taking an item must not await (a cancellation there would lose the item).
        self._room = asyncio.Event()

    @property
    def size(self) -> int:
        return self._size + self._reserved

    async def _reserve(self, size: int) -> None:
        while self.size + size > self.capacity:
            if not self._block or size > self.capacity:
                raise RefusedError(
                    f"sending queue is full ({self.size}/{self.capacity} {self._sizer_kind})",
                    retry_after=_REFUSE_RETRY_AFTER,
                )
            self._room.clear()
            await self._room.wait()
        self._reserved += size

    def _enqueue(self, item: QueueItem, reserved: int) -> None:
        self._reserved -= reserved
        self._size += item.size
        self._items.put_nowait(item)

    async def start(self) -> None:  # noqa: B027 - no-op for the memory queue
        pass

    @abc.abstractmethod
    async def put(self, signal: Signal, request: Request) -> None: ...

    async def get(self) -> QueueItem:
        return self._taken(await self._items.get())

    async def get_within(self, timeout: float) -> QueueItem | None:
        """The next item, or None if none arrives within ``timeout`` seconds."""
        try:
            return self.get_nowait() or self._taken(await asyncio.wait_for(self._items.get(), timeout))
        except TimeoutError:
            return None

    def get_nowait(self) -> QueueItem | None:
        try:
            return self._taken(self._items.get_nowait())
        except asyncio.QueueEmpty:
            return None

    def _taken(self, item: QueueItem) -> QueueItem:
        self._size -= item.size
        self._room.set()
        return item

    def empty(self) -> bool:
        return self._items.empty()

    def ack(self, item: QueueItem) -> None:  # noqa: B027 - memory items need no acknowledgement
        """The item was delivered or dropped for good."""

    async def close(self) -> None:  # noqa: B027
        pass


class MemoryQueue(SendingQueue):
    async def put(self, signal: Signal, request: Request) -> None:
        size = self._size_of(signal, request)
        await self._reserve(size)
        self._enqueue(QueueItem(signal, size, item_count(signal, request), decoded=request), size)


class PersistentQueue(SendingQueue):
    """A sending queue backed by a file_storage SegmentQueue (the caller opened it; this closes it)."""

    def __init__(self, store: SegmentQueue, capacity: int, sizer: Sizer, block_on_overflow: bool) -> None:
        super().__init__(capacity, sizer, block_on_overflow)
        self.store = store
        self.recovered = 0

    async def start(self) -> None:
        # Everything still on disk from a previous run (including what was in flight at a kill -9) goes first.
        for record in self.store._recovered:
            try:
                payload = await asyncio.to_thread(self.store.read, record)
                signal, request = decode_payload(payload)
            except (OSError, ValueError, DecodeError) as exc:
                _log.error(
                    "persistent queue %s: dropping unreadable record %d: %s",
                    self.store.directory,
                    record.seq,
                    exc,
                )
                self.store.ack(record.seq)
                continue
            size = record.length if self._sizer_kind == "bytes" else self._size_of(signal, request)
            self._size += size
            item = QueueItem(signal, size, item_count(signal, request), record, payload=payload[1:])
            self._items.put_nowait(item)
            self.recovered += 1
        self.store._recovered = []
        if self.recovered:
            _log.info(
                "persistent queue %s: re-delivering %d requests from disk",
                self.store.directory,
                self.recovered,
            )

    async def put(self, signal: Signal, request: Request) -> None:
        body = serialized(request)
        payload = _framed(signal, body)
        size = len(payload) if self._sizer_kind == "bytes" else self._size_of(signal, request)
        await self._reserve(size)
        try:
            record = await self.store.append(payload)
        except BaseException:
            self._reserved -= size
            raise
        item = QueueItem(signal, size, item_count(signal, request), record, payload=body)
        self._enqueue(item, size)

    def ack(self, item: QueueItem) -> None:
        if item.record is not None:
            self.store.ack(item.record.seq)

    async def close(self) -> None:
        await self.store.close()

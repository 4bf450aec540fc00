"""``retry_on_failure``, ``sending_queue``, ``timeout``: the keys every exporter shares (as upstream)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from collector.confmap.bounds import above, at_least, between
from processors.pipeline import Duration

__all__ = [
    "DEFAULT_BATCH_FLUSH_TIMEOUT",
    "DEFAULT_BATCH_MIN_SIZE",
    "DEFAULT_INITIAL_INTERVAL",
    "DEFAULT_MAX_ELAPSED_TIME",
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MULTIPLIER",
    "DEFAULT_NUM_CONSUMERS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_RANDOMIZATION_FACTOR",
    "DEFAULT_TIMEOUT",
    "BatchConfig",
    "QueueConfig",
    "RetryConfig",
    "SenderConfig",
    "Sizer",
]

DEFAULT_INITIAL_INTERVAL = Duration(5.0)
DEFAULT_RANDOMIZATION_FACTOR = 0.5
DEFAULT_MULTIPLIER = 1.5
DEFAULT_MAX_INTERVAL = Duration(30.0)
DEFAULT_MAX_ELAPSED_TIME = Duration(300.0)  # 0 = retry forever
DEFAULT_NUM_CONSUMERS = 10
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_TIMEOUT = Duration(5.0)
DEFAULT_BATCH_FLUSH_TIMEOUT = Duration(0.2)
DEFAULT_BATCH_MIN_SIZE = 8192

Sizer = Literal["requests", "items", "bytes"]


@dataclass
class RetryConfig:
    """``retry_on_failure``: how a send that failed transiently (peer down, throttled) is retried."""

    # Retry transient failures; off: such a request is dropped (and counted) on its first failure.
    enabled: bool = True
    # Wait before the first retry; each later wait is the previous one times ``multiplier``.
    initial_interval: Duration = field(default=DEFAULT_INITIAL_INTERVAL, metadata=at_least(0))
    # Jitter: each wait is drawn uniformly within ± this fraction of it (0 to 1), so senders do not retry in step.
    randomization_factor: float = field(default=DEFAULT_RANDOMIZATION_FACTOR, metadata=between(0, 1))
    # Growth of the wait from one retry to the next (>= 1).
    multiplier: float = field(default=DEFAULT_MULTIPLIER, metadata=at_least(1))
    # Longest wait between two retries; a server's retry-after hint may ask for longer.
    max_interval: Duration = field(default=DEFAULT_MAX_INTERVAL, metadata=at_least(0))
    # Give up (drop and count the request) when the next retry would start later than this after the first
    # attempt; 0 retries forever.
    max_elapsed_time: Duration = field(default=DEFAULT_MAX_ELAPSED_TIME, metadata=at_least(0))


@dataclass
class BatchConfig:
    """``sending_queue::batch``: each consumer sends what it takes from the queue in batches (upstream keys).

    A consumer takes a request, then more, until the batch holds ``min_size`` (in ``sizer`` units) or
    ``flush_timeout`` has passed since its first request. Queued requests are never split (each is acknowledged
    as a whole), so ``max_size`` caps a batch at the request that would cross it, which starts the next batch.
    """

    # Send a batch that has not reached ``min_size`` once this long has passed since its first request.
    flush_timeout: Duration = field(default=DEFAULT_BATCH_FLUSH_TIMEOUT, metadata=above(0))
    # Send as soon as the batch holds this much (in ``sizer`` units); 0: every request on its own.
    min_size: int = field(default=DEFAULT_BATCH_MIN_SIZE, metadata=at_least(0))
    # Largest batch; the request that would cross it starts the next one (requests are never split). 0: no limit.
    max_size: int = field(default=0, metadata=at_least(0))
    # What min_size and max_size count: items (spans, data points, log records), requests, or serialized bytes.
    sizer: Sizer = "items"

    def validate(self) -> list[str]:
        if 0 < self.max_size < self.min_size:
            return [f"sending_queue::batch::max_size: must be >= min_size ({self.min_size}) or 0, got {self.max_size}"]
        return []


@dataclass
class QueueConfig:
    """``sending_queue``: requests wait here, acknowledged to the sender, until a consumer sends them."""

    # Queue requests; off: the sender waits for each send (with its retries) and sees its failure.
    enabled: bool = True
    # Consumers sending from the queue at once (for the postgres exporter: connections).
    num_consumers: int = DEFAULT_NUM_CONSUMERS
    # Capacity in ``sizer`` units; when full, new data is refused with a retryable code (UNAVAILABLE / 503).
    queue_size: int = DEFAULT_QUEUE_SIZE
    # What queue_size counts: whole requests (default), items (spans, points, log records) or serialized
    # bytes.
    sizer: Sizer = "requests"
    # When full: wait for room instead of refusing (upstream ``block_on_overflow``). Off by default so a full
    # queue turns into back-pressure the client retries (UNAVAILABLE / 503), never an unbounded wait.
    block_on_overflow: bool = False
    # Component id of a ``file_storage`` extension: makes the queue persistent.
    storage: str | None = None
    # Consumers send batches of queued requests (one call per batch) instead of one request at a time.
    batch: BatchConfig | None = None

    def validate(self) -> list[str]:
        errors = []
        if self.enabled:
            if self.batch is not None:
                errors += self.batch.validate()
            if self.num_consumers <= 0:
                errors.append(f"sending_queue::num_consumers: must be > 0, got {self.num_consumers}")
            if self.queue_size <= 0:
                errors.append(f"sending_queue::queue_size: must be > 0, got {self.queue_size}")
        return errors


class SenderConfig(Protocol):
    """The keys of an exporter's config that QueuedExporter reads (``sender_options``)."""

    @property
    def timeout(self) -> float: ...

    @property
    def retry_on_failure(self) -> RetryConfig: ...

    @property
    def sending_queue(self) -> QueueConfig: ...

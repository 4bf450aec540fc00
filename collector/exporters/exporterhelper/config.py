"""``retry_on_failure``, ``sending_queue``, ``timeout``: the keys every exporter shares (as upstream)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

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
    initial_interval: Duration = DEFAULT_INITIAL_INTERVAL
    # Jitter: each wait is drawn uniformly within ± this fraction of it (0 to 1), so senders do not retry in step.
    randomization_factor: float = DEFAULT_RANDOMIZATION_FACTOR
    # Growth of the wait from one retry to the next (>= 1).
    multiplier: float = DEFAULT_MULTIPLIER
    # Longest wait between two retries; a server's retry-after hint may ask for longer.
    max_interval: Duration = DEFAULT_MAX_INTERVAL
    # Give up (drop and count the request) when the next retry would start later than this after the first
    # attempt; 0 retries forever.
    max_elapsed_time: Duration = DEFAULT_MAX_ELAPSED_TIME

    def validate(self) -> list[str]:
        errors = []
        if self.initial_interval < 0:
            errors.append(f"retry_on_failure::initial_interval: must be >= 0, got {self.initial_interval}")
        if not 0 <= self.randomization_factor <= 1:
            errors.append(
                f"retry_on_failure::randomization_factor: must be between 0 and 1, got {self.randomization_factor}"
            )
        if self.multiplier < 1:
            errors.append(f"retry_on_failure::multiplier: must be >= 1, got {self.multiplier}")
        if self.max_interval < 0:
            errors.append(f"retry_on_failure::max_interval: must be >= 0, got {self.max_interval}")
        if self.max_elapsed_time < 0:
            errors.append(
                f"retry_on_failure::max_elapsed_time: must be >= 0 (0 = forever), got {self.max_elapsed_time}"
            )
        return errors


@dataclass
class BatchConfig:
    """``sending_queue::batch``: each consumer sends what it takes from the queue in batches (upstream keys).

    A consumer takes a request, then more, until the batch holds ``min_size`` (in ``sizer`` units) or
    ``flush_timeout`` has passed since its first request. Queued requests are never split (each is acknowledged
    as a whole), so ``max_size`` caps a batch at the request that would cross it, which starts the next batch.
    """

    # Send a batch that has not reached ``min_size`` once this long has passed since its first request.
    flush_timeout: Duration = DEFAULT_BATCH_FLUSH_TIMEOUT
    # Send as soon as the batch holds this much (in ``sizer`` units); 0: every request on its own.
    min_size: int = DEFAULT_BATCH_MIN_SIZE
    # Largest batch; the request that would cross it starts the next one (requests are never split). 0: no limit.
    max_size: int = 0
    # What min_size and max_size count: items (spans, data points, log records), requests, or serialized bytes.
    sizer: Sizer = "items"

    def validate(self) -> list[str]:
        errors = []
        if self.flush_timeout <= 0:
            errors.append(f"sending_queue::batch::flush_timeout: must be > 0, got {self.flush_timeout}")
        if self.min_size < 0:
            errors.append(f"sending_queue::batch::min_size: must be >= 0, got {self.min_size}")
        if self.max_size < 0:
            errors.append(f"sending_queue::batch::max_size: must be >= 0 (0 = no limit), got {self.max_size}")
        elif self.max_size and self.max_size < self.min_size:
            errors.append(
                f"sending_queue::batch::max_size: must be >= min_size ({self.min_size}) or 0, got {self.max_size}"
            )
        return errors


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

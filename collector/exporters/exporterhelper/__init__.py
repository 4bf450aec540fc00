"""The exporter helper every exporter builds on (upstream exporter/exporterhelper): ``sending_queue`` (in
memory or
persistent through ``file_storage``), ``retry_on_failure`` with exponential backoff, ``timeout``, and the
Collector's
``otelcol_exporter_*`` metrics."""

from __future__ import annotations

from .backoff import ExponentialBackoff
from .config import (
    DEFAULT_BATCH_FLUSH_TIMEOUT,
    DEFAULT_BATCH_MIN_SIZE,
    DEFAULT_INITIAL_INTERVAL,
    DEFAULT_MAX_ELAPSED_TIME,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MULTIPLIER,
    DEFAULT_NUM_CONSUMERS,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_RANDOMIZATION_FACTOR,
    DEFAULT_TIMEOUT,
    BatchConfig,
    QueueConfig,
    RetryConfig,
    Sizer,
)
from .queue import MemoryQueue, PersistentQueue, QueueItem, SendingQueue, decode_payload
from .queued_exporter import DEFAULT_SHUTDOWN_TIMEOUT, BatchSendFunc, PayloadSendFunc, QueuedExporter, SendFunc

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
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "BatchConfig",
    "BatchSendFunc",
    "ExponentialBackoff",
    "MemoryQueue",
    "PayloadSendFunc",
    "PersistentQueue",
    "QueueConfig",
    "QueueItem",
    "QueuedExporter",
    "RetryConfig",
    "SendFunc",
    "SendingQueue",
    "Sizer",
    "decode_payload",
]

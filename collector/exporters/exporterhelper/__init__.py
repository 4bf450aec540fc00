"""The exporter helper every exporter builds on (upstream exporter/exporterhelper): ``sending_queue`` (in memory or
persistent through ``file_storage``), ``retry_on_failure`` with exponential backoff, ``timeout``, and the Collector's
``otelcol_exporter_*`` metrics. The defaults of those keys are in ``exporterhelper.config``."""

from __future__ import annotations

from .backoff import ExponentialBackoff
from .config import DEFAULT_TIMEOUT, BatchConfig, QueueConfig, RetryConfig, SenderConfig, Sizer
from .queue import MemoryQueue, PersistentQueue, QueueItem, SendingQueue
from .queued_exporter import BatchSendFunc, PayloadSendFunc, QueuedExporter, SendFunc, sender_options

__all__ = [
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
    "SenderConfig",
    "SendingQueue",
    "Sizer",
    "sender_options",
]

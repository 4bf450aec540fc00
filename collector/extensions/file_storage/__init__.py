"""``file_storage`` extension: durable storage for persistent sending queues (``sending_queue.storage``)."""

from __future__ import annotations

from collector.component import ExtensionFactory

from .config import CompactionConfig, FileStorageConfig
from .extension import FileStorageExtension
from .segment_queue import QueueStoreError, SegmentQueue, StoredRecord

__all__ = [
    "CompactionConfig",
    "FileStorageConfig",
    "FileStorageExtension",
    "QueueStoreError",
    "SegmentQueue",
    "StoredRecord",
    "factories",
]


factories = (ExtensionFactory(type="file_storage", config_type=FileStorageConfig, create=FileStorageExtension),)

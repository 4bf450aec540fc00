"""Config of the ``file_storage`` extension (upstream keys: extension/storage/filestorage)."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.confmap.bounds import above, at_least
from processors.pipeline import Duration

__all__ = [
    "DEFAULT_DIRECTORY",
    "DEFAULT_FSYNC",
    "DEFAULT_TIMEOUT",
    "CompactionConfig",
    "FileStorageConfig",
]

# Upstream defaults to /var/lib/otelcol/file_storage, which needs root; a directory under the working
# directory
# works for a developer's collector and in a container alike. Point it at a volume in production.
DEFAULT_DIRECTORY = "./data/file_storage"
DEFAULT_TIMEOUT = Duration(1.0)
# Upstream defaults fsync to false; we default to true because "acknowledged means durable" (kill -9 and power
# loss) is the point of a persistent queue here, and group commit keeps its cost per batch, not per request.
DEFAULT_FSYNC = True
DEFAULT_CREATE_DIRECTORY = True
DEFAULT_SEGMENT_SIZE_MIB = 16
DEFAULT_COMPACTION_CHECK_INTERVAL = Duration(5.0)


@dataclass
class CompactionConfig:
    """Accepted for config compatibility. Segments are deleted as soon as they are fully acknowledged, which is
    the compaction a FIFO needs, so these only validate."""

    on_start: bool = False  # upstream compaction key: accepted, no effect (segments are deleted once acknowledged)
    on_rebound: bool = False  # upstream compaction key: accepted, no effect
    directory: str = ""  # upstream compaction key: accepted, no effect
    rebound_needed_threshold_mib: int = 100  # upstream compaction key: accepted, no effect
    rebound_trigger_threshold_mib: int = 10  # upstream compaction key: accepted, no effect
    max_transaction_size: int = 65536  # upstream compaction key: accepted, no effect
    check_interval: Duration = DEFAULT_COMPACTION_CHECK_INTERVAL  # upstream compaction key: accepted, no effect
    cleanup_on_start: bool = False  # upstream compaction key: accepted, no effect


@dataclass
class FileStorageConfig:
    directory: str = DEFAULT_DIRECTORY
    # How long opening a client may wait for the directory lock held by another process.
    timeout: Duration = field(default=DEFAULT_TIMEOUT, metadata=at_least(0))
    fsync: bool = DEFAULT_FSYNC
    create_directory: bool = DEFAULT_CREATE_DIRECTORY
    compaction: CompactionConfig = field(default_factory=CompactionConfig)
    # Our addition (not upstream): size at which a new segment file is started.
    segment_size_mib: int = field(default=DEFAULT_SEGMENT_SIZE_MIB, metadata=above(0))

    def validate(self) -> list[str]:
        return [] if self.directory else ["directory: must not be empty"]

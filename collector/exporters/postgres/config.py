"""Config of the ``postgres`` exporter: every key, its default (a named constant) and ``validate()``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from collector.confmap.bounds import at_least
from collector.exporters.exporterhelper import BatchConfig, QueueConfig, RetryConfig
from processors.pipeline import Duration
from processors.redaction import redact_text

from .rollups import ROLLUP_DIMENSIONS

__all__ = [
    "DEFAULT_ALLOWED_CLOCK_SKEW",
    "DEFAULT_BATCH_FLUSH_TIMEOUT",
    "DEFAULT_BATCH_MAX_SIZE",
    "DEFAULT_BATCH_MIN_SIZE",
    "DEFAULT_DATA_DIR",
    "DEFAULT_PARTITION_INTERVAL",
    "DEFAULT_PREMAKE",
    "DEFAULT_RETENTION_CHECK_INTERVAL",
    "DEFAULT_ROLLUP_COMPACTION_INTERVAL",
    "DEFAULT_ROLLUP_DIMENSIONS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WRITE_PROCESSES",
    "EMBEDDED",
    "PartitionConfig",
    "PostgresExporterConfig",
    "RetentionConfig",
    "parse_span",
]

EMBEDDED = "embedded"
DEFAULT_DATA_DIR = "./.otel-metrics/postgres"
DEFAULT_RETENTION_TRACES = "30d"
DEFAULT_RETENTION_METRICS = "30d"
DEFAULT_RETENTION_LOGS = "14d"
DEFAULT_RETENTION_ROLLUPS = "400d"
DEFAULT_PARTITION_INTERVAL = "1d"
# How far ahead of the collector's clock an item may be dated (client clocks run ahead); later items are quarantined.
DEFAULT_ALLOWED_CLOCK_SKEW = Duration(3600.0)
DEFAULT_PREMAKE = 3
DEFAULT_ROLLUP_DIMENSIONS = ("tenant_id", "agent_name", "model")
# One batch is one transaction (spans: 10,000 a transaction); a slow server beyond this is treated as unavailable
# (retried from the queue).
DEFAULT_TIMEOUT = Duration(30.0)
DEFAULT_RETENTION_CHECK_INTERVAL = Duration(3600.0)
DEFAULT_ROLLUP_COMPACTION_INTERVAL = Duration(10.0)
# Nothing lost: retry until PostgreSQL is back, whatever it takes (0 = no max elapsed time).
DEFAULT_RETRY_INITIAL_INTERVAL = Duration(1.0)
DEFAULT_RETRY_MAX_INTERVAL = Duration(30.0)
DEFAULT_RETRY_MAX_ELAPSED_TIME = Duration(0.0)
# Each consumer holds one connection; two suit the 2-core default machine (PostgreSQL needs the other core).
DEFAULT_NUM_CONSUMERS = 2
DEFAULT_QUEUE_SIZE = 5000
DEFAULT_BATCH_FLUSH_TIMEOUT = Duration(0.2)
DEFAULT_BATCH_MIN_SIZE = 8192  # spans, points or log records per transaction (upstream's default min_size)
DEFAULT_BATCH_MAX_SIZE = 20000
DEFAULT_WRITE_PROCESSES = 0

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_span(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"2w"`` -> seconds; ``"0"`` or ``""`` -> 0 (keep forever)."""
    if text in ("0", "", "forever"):
        return 0.0
    match = _SPAN.match(str(text))
    if match is None:
        raise ValueError(f"expected a time span such as '30d', '12h' or '2w', got {text!r}")
    return float(match.group(1)) * _SPAN_SECONDS[match.group(2)]


@dataclass
class RetentionConfig:
    """How long each signal's raw partitions (and the rollups) are kept; "0" keeps forever."""

    traces: str = DEFAULT_RETENTION_TRACES
    metrics: str = DEFAULT_RETENTION_METRICS
    logs: str = DEFAULT_RETENTION_LOGS
    rollups: str = DEFAULT_RETENTION_ROLLUPS

    def seconds(self) -> dict[str, float]:
        """Raw retention per signal ("traces", "metrics", "logs") in seconds; 0: forever."""
        return {key: parse_span(getattr(self, key)) for key in ("traces", "metrics", "logs")}

    def validate(self) -> list[str]:
        errors = []
        for key in ("traces", "metrics", "logs", "rollups"):
            try:
                parse_span(getattr(self, key))
            except ValueError as exc:
                errors.append(f"retention::{key}: {exc}")
        return errors


@dataclass
class PartitionConfig:
    interval: str = DEFAULT_PARTITION_INTERVAL
    premake: int = field(default=DEFAULT_PREMAKE, metadata=at_least(0))

    def validate(self) -> list[str]:
        errors = []
        try:
            seconds = parse_span(self.interval)
            if seconds < 3600 or seconds % 3600:
                errors.append(f"partition::interval: must be a whole number of hours (>= 1h), got {self.interval!r}")
        except ValueError as exc:
            errors.append(f"partition::interval: {exc}")
        return errors


def _default_retry() -> RetryConfig:
    return RetryConfig(
        initial_interval=DEFAULT_RETRY_INITIAL_INTERVAL,
        max_interval=DEFAULT_RETRY_MAX_INTERVAL,
        max_elapsed_time=DEFAULT_RETRY_MAX_ELAPSED_TIME,
    )


def _default_queue() -> QueueConfig:
    # Batching on by default: a transaction's fixed costs (commit, one COPY per table, one rollup row per key and
    # batch) are shared by up to max_size spans; under load the queue holds enough to fill batches at once.
    batch = BatchConfig(
        flush_timeout=DEFAULT_BATCH_FLUSH_TIMEOUT, min_size=DEFAULT_BATCH_MIN_SIZE, max_size=DEFAULT_BATCH_MAX_SIZE
    )
    return QueueConfig(num_consumers=DEFAULT_NUM_CONSUMERS, queue_size=DEFAULT_QUEUE_SIZE, batch=batch)


@dataclass
class PostgresExporterConfig:
    # A postgresql:// URL, or None / "embedded" for a PostgreSQL started from the pgserver wheel under
    # data_dir.
    dsn: str | None = None
    # Embedded server's data directory (relative paths: to the working directory).
    data_dir: str = DEFAULT_DATA_DIR
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    # Items dated more than this after now are quarantined, as are items older than their signal's retention
    # (docs/schema.md, "Time checked at the door").
    allowed_clock_skew: Duration = field(default=DEFAULT_ALLOWED_CLOCK_SKEW, metadata=at_least(0))
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    # Which of tenant_id, agent_name, model the rollups carry (others hold '').
    rollup_dimensions: list[str] = field(default_factory=lambda: list(DEFAULT_ROLLUP_DIMENSIONS))
    # Write from this many worker processes instead of threads in the collector (0). Turning spans into rows is
    # CPU-bound Python; processes use more than one core. Each process holds one connection.
    write_processes: int = field(default=DEFAULT_WRITE_PROCESSES, metadata=at_least(0))
    # Apply pending migrations at start (several sink processes may do so at once: advisory lock).
    migrate: bool = True
    # How often retention drops expired partitions and rollups (0: never; `otel-metrics db retention` does
    # it).
    retention_check_interval: Duration = DEFAULT_RETENTION_CHECK_INTERVAL
    # How often the partial rollup rows this process appended are merged into one row per key (0: never; readers
    # aggregate either way, merged rows only make them read less).
    rollup_compaction_interval: Duration = field(default=DEFAULT_ROLLUP_COMPACTION_INTERVAL, metadata=at_least(0))
    timeout: Duration = field(default=DEFAULT_TIMEOUT, metadata=at_least(0))
    retry_on_failure: RetryConfig = field(default_factory=_default_retry)
    sending_queue: QueueConfig = field(default_factory=_default_queue)

    @property
    def embedded(self) -> bool:
        return self.dsn is None or self.dsn.strip() in ("", EMBEDDED)

    def validate(self) -> list[str]:
        errors = [*self.retention.validate(), *self.partition.validate()]
        if not self.embedded and not str(self.dsn).startswith(("postgresql://", "postgres://")):
            errors.append(f"dsn: expected a postgresql:// URL or 'embedded', got {redact_text(str(self.dsn))!r}")
        if self.embedded and not self.data_dir:
            errors.append("data_dir: must not be empty when dsn is embedded")
        unknown = [d for d in self.rollup_dimensions if d not in ROLLUP_DIMENSIONS]
        if unknown:
            errors.append(f"rollup_dimensions: unknown {unknown}; expected some of {list(ROLLUP_DIMENSIONS)}")
        errors += self.sending_queue.validate()
        return errors

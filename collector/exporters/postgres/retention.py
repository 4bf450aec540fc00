"""Retention: drop raw partitions whose whole time range is older than the signal's retention, delete old
rollups (and quarantine rows older than the longest raw retention)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from .config import RetentionConfig, parse_span
from .writer import PARTITIONED_TABLES

__all__ = ["RetentionResult", "apply_retention"]


@dataclass
class RetentionResult:
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rollup_rows: int = 0
    deleted_quarantine_rows: int = 0


def apply_retention(
    conn: psycopg.Connection[Any], retention: RetentionConfig, now: datetime | None = None
) -> RetentionResult:
    now = now or datetime.now(UTC)
    result = RetentionResult()
    keep = {
        "traces": parse_span(retention.traces),
        "metrics": parse_span(retention.metrics),
        "logs": parse_span(retention.logs),
    }
    with conn.transaction():
        for signal, tables in PARTITIONED_TABLES.items():
            seconds = keep[signal.value]
            if seconds <= 0:
                continue
            cutoff = now - timedelta(seconds=seconds)
            for table in tables:
                rows = conn.execute("SELECT otel_drop_partitions(%s, %s)", (table, cutoff)).fetchall()
                result.dropped_partitions += [r[0] for r in rows]
            if signal.value == "traces":  # claims of LLM calls (calls.py) go with their spans
                conn.execute("DELETE FROM llm_calls WHERE start_time < %s", (cutoff,))
        rollups = parse_span(retention.rollups)
        if rollups > 0:
            cutoff = now - timedelta(seconds=rollups)
            for table in ("span_rollups_1m", "span_rollups_1h", "span_rollups_unsampled_1h"):
                cur = conn.execute(f"DELETE FROM {table} WHERE bucket_start < %s", (cutoff,))
                result.deleted_rollup_rows += cur.rowcount
        longest = max(keep.values())
        if longest > 0 and all(v > 0 for v in keep.values()):
            cur = conn.execute("DELETE FROM quarantine WHERE received_at < %s", (now - timedelta(seconds=longest),))
            result.deleted_quarantine_rows = cur.rowcount
    return result

"""Retention: drop raw partitions whose whole time range is older than the signal's retention, or (given
``ahead``) starts further ahead than the sink ever writes; delete old rollups (and quarantine rows older than the
longest raw retention).

Items dated after ``now + allowed_clock_skew`` are quarantined at the door, and partitions are premade
``premake`` intervals ahead, so a partition starting beyond both holds only what an older version or a larger
skew let in (a span dated 2554): it would otherwise never be dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from .config import PostgresExporterConfig, RetentionConfig, parse_span
from .writer import PARTITIONED_TABLES

__all__ = ["RetentionResult", "ahead_seconds", "apply_retention"]

ROLLUP_TABLES = ("span_rollups_1m", "span_rollups_1h", "span_rollups_unsampled_1h")


@dataclass
class RetentionResult:
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rollup_rows: int = 0
    deleted_quarantine_rows: int = 0


def ahead_seconds(config: PostgresExporterConfig) -> float:
    """How far ahead of now the sink writes: the allowed clock skew or the premade partitions, whichever is
    further."""
    premade = (config.partition.premake + 1) * parse_span(config.partition.interval)
    return max(float(config.allowed_clock_skew), float(premade))


def _drop_ahead(conn: psycopg.Connection[Any], table: str, after: datetime) -> list[str]:
    """Drop the partitions of ``table`` starting after ``after``; their names."""
    rows = conn.execute(
        "SELECT partition FROM otel_partitions WHERE parent = %s AND range_start > %s ORDER BY range_start",
        (table, after),
    ).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute("DELETE FROM otel_partitions WHERE partition = %s", (name,))
    return [name for (name,) in rows]


def apply_retention(
    conn: psycopg.Connection[Any],
    retention: RetentionConfig,
    now: datetime | None = None,
    ahead: float | None = None,
) -> RetentionResult:
    """``ahead``: seconds (:func:`ahead_seconds`); partitions starting beyond ``now + ahead`` are dropped too."""
    now = now or datetime.now(UTC)
    result = RetentionResult()
    keep = {
        "traces": parse_span(retention.traces),
        "metrics": parse_span(retention.metrics),
        "logs": parse_span(retention.logs),
    }
    with conn.transaction():
        if ahead is not None:
            horizon = now + timedelta(seconds=ahead)
            for tables in PARTITIONED_TABLES.values():
                for table in tables:
                    result.dropped_partitions += _drop_ahead(conn, table, horizon)
            conn.execute("DELETE FROM llm_calls WHERE start_time > %s", (horizon,))
            for table in ROLLUP_TABLES:
                cur = conn.execute(f"DELETE FROM {table} WHERE bucket_start > %s", (horizon,))
                result.deleted_rollup_rows += cur.rowcount
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
            for table in ROLLUP_TABLES:
                cur = conn.execute(f"DELETE FROM {table} WHERE bucket_start < %s", (cutoff,))
                result.deleted_rollup_rows += cur.rowcount
        longest = max(keep.values())
        if longest > 0 and all(v > 0 for v in keep.values()):
            cur = conn.execute("DELETE FROM quarantine WHERE received_at < %s", (now - timedelta(seconds=longest),))
            result.deleted_quarantine_rows = cur.rowcount
    return result

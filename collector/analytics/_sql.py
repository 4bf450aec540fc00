"""SQL building blocks: the WHERE clause for a window and filters, on raw spans or on span_rollups_1h.

Values always travel as parameters; identifiers (columns, tables, granularities) are chosen from fixed maps and
composed with ``psycopg.sql`` so no user text ever becomes SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from .window import FILTER_NAMES, GRANULARITIES, Filters, TimeWindow

__all__ = [
    "CACHED_TABLES",
    "KEY_COLUMNS",
    "ROLLUP_TABLE",
    "Part",
    "Source",
    "filter_clauses",
    "granularity_literal",
    "source_for",
]

# Every key a query filters or breaks down by, and its column in spans (and in the rollups, which carry ROLLUP_KEYS).
KEY_COLUMNS = {
    "service": "service_name",
    "operation": "operation",
    "tenant": "tenant_id",
    "user": "user_id",
    "agent": "agent_name",
    "model": "model",
    "provider": "provider",
    "correlation": "correlation_id",
    "feature": "feature",
}
_FILTER_COLUMNS = {name: KEY_COLUMNS[name] for name in FILTER_NAMES}
RAW_TABLE = "spans"
ROLLUP_TABLE = "span_rollups_1h"
DAILY_TABLE = "analytics_rollups_1d"
OPS_TABLE = "analytics_rollups_1d_ops"
HOURLY_OPS_TABLE = "analytics_rollups_1h_ops"
HOURLY_ALL_TABLE = "analytics_rollups_1h_all"
# Cached tables without the rollup dimensions (status, tenant, agent, model), and without any key columns.
CACHED_TABLES = (DAILY_TABLE, OPS_TABLE, HOURLY_OPS_TABLE, HOURLY_ALL_TABLE)


@dataclass(frozen=True)
class Part:
    """One table and time range a query reads (rollup sources may combine hourly and daily rows)."""

    table: str
    where: sql.Composable
    params: list[Any]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.table)


@dataclass(frozen=True)
class Source:
    """Where a query reads from: raw spans, or rollups (hourly rows, plus cached daily rows for whole days)."""

    parts: list[Part]
    time_column: str
    window: TimeWindow  # the window actually read (hour-aligned on rollups)

    @property
    def rollup(self) -> bool:
        return self.time_column == "bucket_start"

    @property
    def time(self) -> sql.Identifier:
        return sql.Identifier(self.time_column)

    def _single(self) -> Part:
        if len(self.parts) != 1:
            raise AssertionError("this query reads a single table")
        return self.parts[0]

    @property
    def table(self) -> str:
        return self._single().table

    @property
    def ident(self) -> sql.Identifier:
        return self._single().ident

    @property
    def where(self) -> sql.Composable:
        return self._single().where

    @property
    def params(self) -> list[Any]:
        return self._single().params


def _where(window: TimeWindow, filters: Filters, time_column: str) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [
        sql.SQL("{} >= %s").format(sql.Identifier(time_column)),
        sql.SQL("{} < %s").format(sql.Identifier(time_column)),
    ]
    params: list[Any] = [window.start, window.end]
    clauses, values = filter_clauses(filters)
    return sql.SQL(" AND ").join(parts + clauses), params + values


def filter_clauses(filters: Filters) -> tuple[list[sql.Composable], list[Any]]:
    """``column = %s`` for each filter set, and their values as the parameters, in the same order."""
    items = filters.items()
    clauses: list[sql.Composable] = [
        sql.SQL("{} = %s").format(sql.Identifier(_FILTER_COLUMNS[name])) for name, _ in items
    ]
    return clauses, [value for _, value in items]


def _part(table: str, start: datetime, end: datetime, filters: Filters, time_column: str) -> Part:
    where, params = _where(TimeWindow(start, end), filters, time_column)
    return Part(table, where, params)


def source_for(
    window: TimeWindow,
    filters: Filters,
    *,
    allow_rollup: bool = True,
    daily: tuple[datetime, datetime] | None = None,
    per_operation: bool = False,
    cached_until: datetime | None = None,
    hourly_table: str | None = None,
) -> Source:
    """Rollups for windows longer than a day (when the filters allow), raw spans otherwise.

    ``daily`` is the range of whole days to read from the daily cache instead of the hourly rollups;
    ``per_operation`` reads the caches merged per (service, operation) (only for queries that neither group nor
    filter by status, tenant, agent or model); then the hours before ``cached_until`` (the end of the last complete,
    refreshed day) that the daily rows do not cover come from the per-operation hourly cache. ``hourly_table``
    instead reads every hour before ``cached_until`` from that hourly cache table (hour-resolution queries)."""
    if not (allow_rollup and window.uses_rollups and filters.rollup_compatible()):
        return Source([_part(RAW_TABLE, window.start, window.end, filters, "start_time")], "start_time", window)
    aligned = window.rollup_aligned()
    ranges: list[tuple[str, datetime, datetime]] = []
    if hourly_table is not None and cached_until is not None:
        split = max(aligned.start, min(aligned.end, cached_until))
        ranges = [(hourly_table, aligned.start, split), (ROLLUP_TABLE, split, aligned.end)]
    elif daily is not None:
        first, last = daily
        edge = HOURLY_OPS_TABLE if per_operation and cached_until is not None else ROLLUP_TABLE
        cached = max(last, min(aligned.end, cached_until)) if cached_until is not None else last
        ranges = [
            (OPS_TABLE if per_operation else DAILY_TABLE, first, last),
            (edge, aligned.start, first),
            (edge, last, cached),
            (ROLLUP_TABLE, cached, aligned.end),
        ]
    else:
        ranges = [(ROLLUP_TABLE, aligned.start, aligned.end)]
    parts = [_part(table, start, end, filters, "bucket_start") for table, start, end in ranges if start < end]
    if not parts:  # keep one (empty) part so queries stay well-formed
        parts = [_part(ROLLUP_TABLE, aligned.start, aligned.end, filters, "bucket_start")]
    return Source(parts, "bucket_start", aligned)


def granularity_literal(granularity: str) -> sql.Literal:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity: expected one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    return sql.Literal(granularity)

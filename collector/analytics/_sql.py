"""SQL building blocks: the WHERE clause for a window and filters, on raw spans or on span_rollups_1h.

Values always travel as parameters; identifiers (columns, tables, granularities) are chosen from fixed maps and
composed with ``psycopg.sql`` so no user text ever becomes SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from .window import GRANULARITIES, Filters, TimeWindow

__all__ = ["FILTER_COLUMNS", "Source", "granularity_literal", "source_for"]

FILTER_COLUMNS = {
    "service": "service_name",
    "operation": "operation",
    "tenant": "tenant_id",
    "user": "user_id",
    "agent": "agent_name",
    "model": "model",
}
RAW_TABLE = "spans"
ROLLUP_TABLE = "span_rollups_1h"


@dataclass(frozen=True)
class Source:
    """Where a query reads from, with its WHERE clause and parameters."""

    table: str
    time_column: str
    where: sql.Composable
    params: list[Any]
    window: TimeWindow  # the window actually read (hour-aligned on rollups)

    @property
    def rollup(self) -> bool:
        return self.table == ROLLUP_TABLE

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.table)

    @property
    def time(self) -> sql.Identifier:
        return sql.Identifier(self.time_column)


def _where(window: TimeWindow, filters: Filters, time_column: str) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [
        sql.SQL("{} >= %s").format(sql.Identifier(time_column)),
        sql.SQL("{} < %s").format(sql.Identifier(time_column)),
    ]
    params: list[Any] = [window.start, window.end]
    for name, value in filters.items():
        parts.append(sql.SQL("{} = %s").format(sql.Identifier(FILTER_COLUMNS[name])))
        params.append(value)
    return sql.SQL(" AND ").join(parts), params


def source_for(window: TimeWindow, filters: Filters, *, allow_rollup: bool = True) -> Source:
    """Rollups for windows longer than a day (when the filters allow), raw spans otherwise."""
    if allow_rollup and window.uses_rollups and filters.rollup_compatible():
        aligned = window.rollup_aligned()
        where, params = _where(aligned, filters, "bucket_start")
        return Source(ROLLUP_TABLE, "bucket_start", where, params, aligned)
    where, params = _where(window, filters, "start_time")
    return Source(RAW_TABLE, "start_time", where, params, window)


def granularity_literal(granularity: str) -> sql.Literal:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity: expected one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    return sql.Literal(granularity)

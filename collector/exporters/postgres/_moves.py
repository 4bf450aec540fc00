"""Changing stored spans after the fact while their rollups stay sums: a statement that updates spans returns what
the rollups need of each (``RETURNING`` + ``RETURNED``), and ``move_rollups`` appends rows that take the spans' old
values out of their keys (negated sums) and put the new ones in. The compaction merges them like any other rows;
min and max are bounds, not sums, so an old value still bounds its key's min/max."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from ._dumpers import copy_rows, register_dumpers
from ._values import dumps
from .rollups import ROLLUP_COLUMNS, aggregate
from .sampling import UNSAMPLED_COLUMNS, unsampled_rows
from .span_columns import SPAN_COLUMNS, span_position

__all__ = ["RETURNING", "move_rollups", "span_rows"]

# What an UPDATE ... RETURNING of spans (alias s) returns for the rollups, in the encoding of SPAN_COLUMNS rows.
RETURNING = """
RETURNING (extract(epoch FROM s.start_time) * 1000000)::bigint, s.duration_ms, s.status_code, s.service_name,
          s.operation, s.tenant_id, s.agent_name, s.model, s.input_tokens, s.output_tokens,
          (s.cost_usd * 10000000000)::bigint, s.quality_score, s.parent_span_id, s.kind, s.adjusted_count
"""
_RETURNED = tuple(
    span_position(c)
    for c in (
        "start_time", "duration_ms", "status_code", "service_name", "operation", "tenant_id", "agent_name", "model",
        "input_tokens", "output_tokens", "cost_usd", "quality_score", "parent_span_id", "kind", "adjusted_count",
    )
)  # fmt: skip
# The summed columns of rollup and unsampled rows (min and max stay: a bound, not a sum).
_NEGATED = frozenset(
    {"count", "errors", "duration_sum_ms", "input_tokens", "output_tokens", "cost_usd", "quality_sum", "requests"}
    | {"quality_count", "roots"}
)


def span_rows(returned: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """SPAN_COLUMNS rows (the columns the rollups read) from the rows ``RETURNING`` returned."""
    out = []
    for values in returned:
        row: list[Any] = [None] * len(SPAN_COLUMNS)
        for position, value in zip(_RETURNED, values, strict=True):
            row[position] = value
        out.append(tuple(row))
    return out


def _negated(rows: list[tuple[Any, ...]], columns: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
    names = [c for c, _ in columns]
    out = []
    for row in rows:
        values = list(row)
        for i, name in enumerate(names):
            if name in _NEGATED:
                values[i] = -values[i]
            elif name == "latency_hist":
                values[i] = dumps({k: -n for k, n in json.loads(values[i]).items()})
        out.append(tuple(values))
    return out


def move_rollups(
    conn: psycopg.Connection[Any],
    before: Sequence[tuple[Any, ...]],
    after: Sequence[tuple[Any, ...]],
    dimensions: Sequence[str],
) -> None:
    """Append the rollup (and unsampled) rows that turn the stored spans ``before`` into ``after`` (same spans)."""
    minutes_new, hours_new = aggregate(after, dimensions)
    minutes_old, hours_old = aggregate(before, dimensions)
    register_dumpers(conn)
    copy_rows(conn, "span_rollups_1m", ROLLUP_COLUMNS, [*_negated(minutes_old, ROLLUP_COLUMNS), *minutes_new])
    copy_rows(conn, "span_rollups_1h", ROLLUP_COLUMNS, [*_negated(hours_old, ROLLUP_COLUMNS), *hours_new])
    unsampled_old, unsampled_new = unsampled_rows(before, dimensions), unsampled_rows(after, dimensions)
    if unsampled_old or unsampled_new:
        rows = [*_negated(unsampled_old, UNSAMPLED_COLUMNS), *unsampled_new]
        copy_rows(conn, "span_rollups_unsampled_1h", UNSAMPLED_COLUMNS, rows)

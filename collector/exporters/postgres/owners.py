"""Every cost has an owner: a priced span that lacks a tenant (a service in the trace that never saw the request's
baggage, in any language) takes the tenant, user, feature and correlation id of its trace, or of its correlation id.

Where: at write time, from the batch itself and from spans already stored (``inherit_owners``: one indexed lookup
per batch that holds such spans, none otherwise), so the rollups are written with the owner; and for spans stored
before their trace's owner arrived, by ``backfill_owners``, which the sink runs before each rollup compaction pass:
it gives the orphans of the last ``LOOKBACK`` their owner (``UPDATE``, found through the partial index
``spans_unowned``, migration 0028) and appends rollup rows that move their counts from the unowned key to the
owner's (negative rows for the old key, positive for the new: rollups are sums, so the compaction merges them).

The owner of a trace is its root span when that has a tenant, else its earliest span with one; of a correlation id,
its earliest span with a tenant. Only empty columns are filled: a span's own values stay. A span's ``attributes``
are not changed (they say what the span itself carried).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ._moves import RETURNING, move_rollups, span_rows
from .span_columns import span_position

__all__ = ["LOOKBACK", "OWNER_COLUMNS", "backfill_owners", "inherit_owners"]

OWNER_COLUMNS = ("tenant_id", "user_id", "feature", "correlation_id")
# How long a span stored without an owner waits for its trace's owner to arrive: each backfill run looks at the spans
# that started this long before it, so an owner stored later than this after its span's start is not applied (the
# bound docs/schema.md states). Longer costs each run more of the spans_unowned index and more rollup buckets to
# compact again.
LOOKBACK = timedelta(hours=1)
_HOUR_US = 3_600_000_000  # the hourly rollups' bucket
# An owner is looked for this far around the orphan's start (the partitions searched).
_NEAR = timedelta(days=1)
_OWNERS = tuple(span_position(c) for c in OWNER_COLUMNS)
_TENANT, _CORRELATION = _OWNERS[0], _OWNERS[3]
_COST, _INPUT, _OUTPUT, _PARENT, _START = (
    span_position(c) for c in ("cost_usd", "input_tokens", "output_tokens", "parent_span_id", "start_time")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BY_TRACE = """
SELECT DISTINCT ON (trace_id) trace_id, tenant_id, user_id, feature, correlation_id FROM spans
WHERE trace_id = ANY(%s) AND tenant_id IS NOT NULL AND start_time >= %s AND start_time < %s
ORDER BY trace_id, parent_span_id IS NULL DESC, start_time
"""
_BY_CORRELATION = """
SELECT DISTINCT ON (correlation_id) correlation_id, tenant_id, user_id, feature FROM spans
WHERE correlation_id = ANY(%s) AND tenant_id IS NOT NULL AND start_time >= %s AND start_time < %s
ORDER BY correlation_id, start_time
"""


def _orphan(row: tuple[Any, ...]) -> bool:
    return bool(row) and row[_TENANT] is None and row[_COST] is not None


def _adopted(row: tuple[Any, ...], owner: Sequence[Any]) -> tuple[Any, ...]:
    out = list(row)
    for position, value in zip(_OWNERS, owner, strict=False):
        if out[position] is None:
            out[position] = value
    return tuple(out)


def inherit_owners(conn: psycopg.Connection[Any], records: Sequence[Any]) -> int:
    """Fill the owner columns of priced spans without a tenant from their trace (in the batch or stored), else their
    correlation id (stored); ``record.row`` replaced. Returns how many spans got an owner."""
    orphans = [r for r in records if _orphan(r.row)]
    if not orphans:
        return 0
    owners: dict[bytes, tuple[Any, ...]] = {}
    for record in records:  # roots first, then in batch order
        row = record.row
        if row and row[_TENANT] is not None and (row[_PARENT] is None or row[0] not in owners):
            owners[row[0]] = tuple(row[p] for p in _OWNERS)
    starts = [r.row[_START] for r in orphans]
    near = (_EPOCH + timedelta(microseconds=min(starts)) - _NEAR, _EPOCH + timedelta(microseconds=max(starts)) + _NEAR)
    missing = sorted({r.row[0] for r in orphans if r.row[0] not in owners})
    if missing:
        for trace_id, *owner in conn.execute(_BY_TRACE, (missing, *near)).fetchall():
            owners[bytes(trace_id)] = tuple(owner)
    by_correlation: dict[str, tuple[Any, ...]] = {}
    correlations = sorted({r.row[_CORRELATION] for r in orphans if r.row[0] not in owners and r.row[_CORRELATION]})
    if correlations:
        for correlation_id, *owner in conn.execute(_BY_CORRELATION, (correlations, *near)).fetchall():
            by_correlation[correlation_id] = tuple(owner)
    adopted = 0
    for record in orphans:
        row = record.row
        owner = owners.get(row[0]) or by_correlation.get(row[_CORRELATION] or "")
        if owner is not None:
            record.row = _adopted(row, owner)
            adopted += 1
    return adopted


# The orphans of the lookback that now have an owner, given it; returns what the rollups need of them (SPAN_COLUMNS
# positions below), before (tenant NULL) and after.
_BACKFILL = f"""
WITH orphan AS (
    SELECT trace_id, span_id, start_time, correlation_id FROM spans
    WHERE start_time >= %(since)s AND tenant_id IS NULL AND cost_usd IS NOT NULL
), by_trace AS (
    SELECT DISTINCT ON (s.trace_id) s.trace_id, s.tenant_id, s.user_id, s.feature, s.correlation_id
    FROM spans AS s
    WHERE s.trace_id IN (SELECT trace_id FROM orphan) AND s.tenant_id IS NOT NULL
      AND s.start_time >= %(since)s - %(near)s
    ORDER BY s.trace_id, s.parent_span_id IS NULL DESC, s.start_time
), by_correlation AS (
    SELECT DISTINCT ON (s.correlation_id) s.correlation_id, s.tenant_id, s.user_id, s.feature
    FROM spans AS s
    WHERE s.correlation_id IN (SELECT correlation_id FROM orphan) AND s.tenant_id IS NOT NULL
      AND s.start_time >= %(since)s - %(near)s
    ORDER BY s.correlation_id, s.start_time
), owner AS (
    SELECT o.trace_id, o.span_id, o.start_time,
           coalesce(t.tenant_id, c.tenant_id) AS tenant_id, coalesce(t.user_id, c.user_id) AS user_id,
           coalesce(t.feature, c.feature) AS feature, t.correlation_id
    FROM orphan AS o
    LEFT JOIN by_trace AS t USING (trace_id)
    LEFT JOIN by_correlation AS c ON c.correlation_id = o.correlation_id
    WHERE coalesce(t.tenant_id, c.tenant_id) IS NOT NULL
)
UPDATE spans AS s
SET tenant_id = w.tenant_id, user_id = coalesce(s.user_id, w.user_id), feature = coalesce(s.feature, w.feature),
    correlation_id = coalesce(s.correlation_id, w.correlation_id)
FROM owner AS w
WHERE s.trace_id = w.trace_id AND s.span_id = w.span_id AND s.start_time = w.start_time AND s.tenant_id IS NULL
{RETURNING}"""


def backfill_owners(
    conn: psycopg.Connection[Any], now: datetime, dimensions: Sequence[str]
) -> tuple[int, datetime | None]:
    """Give the priced spans of the last ``LOOKBACK`` stored without an owner their trace's (or correlation id's)
    owner, now that it is stored, and move their rollup counts to the owner's key, in one transaction. Returns (spans
    given an owner, the earliest hour whose rollup rows changed: compact from there)."""
    with conn.transaction():
        moved = conn.execute(_BACKFILL, {"since": now - LOOKBACK, "near": _NEAR}).fetchall()
        if not moved or "tenant_id" not in dimensions:
            return len(moved), None
        after = span_rows(moved)
        before = [(*r[:_TENANT], None, *r[_TENANT + 1 :]) for r in after]
        move_rollups(conn, before, after, dimensions)
    earliest = min(r[_START] for r in after)
    return len(moved), _EPOCH + timedelta(microseconds=earliest - earliest % _HOUR_US)

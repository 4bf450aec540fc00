"""The per-day cache of ``span_rollups_1h`` (table ``analytics_rollups_1d``, migration 0012; per operation 0013;
the same days per hour, per operation and across everything, 0014).

Only complete UTC days (ended before now) are cached. Before a long query, ``refresh`` compares each day's
fingerprint in the hourly rollups (sum of count, number of rows: both only grow with ingest and shrink with
retention; and ``_KEYED``, the counts weighed by a hash of their tenant plus the tokens: the owner backfill moves
counts between tenants and the sink folds tokens out of stored spans, which after compaction change neither of the
other two) with the one recorded at build time and rebuilds
the days that differ, each in one statement (one
snapshot) under an advisory lock, so concurrent readers never build a day twice at once or record a fingerprint
that does not match the rows they merged. Root counts (migration 0030) grow and shrink only with the counts and move
between keys only with them (owner backfill), except when the sink counts those of rows written before 0030
(exporters/postgres/roots.py): ``_KEYED`` also subtracts the rows whose roots are not counted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

__all__ = [
    "DAILY_TABLE",
    "HOURLY_ALL_TABLE",
    "HOURLY_OPS_TABLE",
    "OPS_TABLE",
    "complete_days",
    "refresh",
    "refresh_hours",
    "running_hours",
    "touched_days",
]

DAILY_TABLE = "analytics_rollups_1d"
# The same days merged per (service, operation) only (migration 0013).
OPS_TABLE = "analytics_rollups_1d_ops"
# The same days' hours per (service, operation), and per hour across every key (migration 0014).
HOURLY_OPS_TABLE = "analytics_rollups_1h_ops"
HOURLY_ALL_TABLE = "analytics_rollups_1h_all"
_LOCK_NAMESPACE = "otel_metrics.analytics.daily:"
_HOURS = "analytics_rollup_hours"
_LOGGER = logging.getLogger("otel_metrics.analytics")
_KEYS = "service_name, operation, status_code, tenant_id, agent_name, model"

# The third part of a fingerprint (source_keys, migration 0016): which tenants the counts belong to, plus the tokens.
# Changes the first two parts miss, once compacted: the owner backfill moves counts between tenants, and the sink
# folds a stored unpriced span of an LLM call priced later (exporters/postgres/calls.py), which takes only tokens out
# (its day is another than the priced span's when the call straddles midnight). A hash collision between the two
# tenants of a move (1 in 2^32) would leave that day stale.
# Minus the rows whose roots are not counted (0030), which only the root backfill lowers: it adds no row and changes
# no other column. Rows written since 0030 subtract nothing, so their days' fingerprints are the same as before.
_KEYED = (
    "coalesce(sum(count * hashtext(tenant_id) + input_tokens + output_tokens), 0)"
    " - count(*) FILTER (WHERE roots IS NULL)"
)
# A sum of root counts (migration 0030) that meets a row written before them (NULL: not counted) is unknown too.
_ROOTS = "CASE WHEN count({0}) = count(*) THEN sum({0}) END"
# `requests` (migration 0024) and `roots` (0030) are the caches' last columns, so every insert names its columns.
_SCALARS = (
    "sum(requests), sum(count), sum(errors), sum(duration_sum_ms), min(duration_min_ms), max(duration_max_ms),"
    " sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(quality_sum), sum(quality_count), "
    + _ROOTS.format("roots")
)
_VALUES = (
    "requests, count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens,"
    " cost_usd, quality_sum, quality_count, roots, hist_keys, hist_counts"
)
_OPERATION = "service_name, operation"


def _merged(name: str, source: str, keys: str) -> str:
    """Two CTEs merging latency histograms: ``e<name>`` sums ``source``'s bucket counts (``k``, ``n``) per ``keys``
    and bucket, ``h<name>`` holds them per ``keys`` as arrays sorted by bucket (``ks``, ``ns``)."""
    return (
        f"e{name} AS (SELECT {keys}, k, sum(n) AS n FROM {source} GROUP BY {keys}, k),"
        f" h{name} AS (SELECT {keys}, array_agg(k ORDER BY k) AS ks, array_agg(n ORDER BY k) AS ns"
        f" FROM e{name} GROUP BY {keys})"
    )


# One snapshot of the day's hourly rows; their jsonb histograms are expanded once (x) and re-merged per day and key
# (DAILY_TABLE), per day and operation (OPS_TABLE), per hour and operation (HOURLY_OPS_TABLE) and per hour
# (HOURLY_ALL_TABLE).
_BUILD = f"""
WITH src AS MATERIALIZED (
    SELECT * FROM span_rollups_1h WHERE bucket_start >= %(day)s AND bucket_start < %(day)s + interval '1 day'
), x AS MATERIALIZED (
    SELECT bucket_start, {_KEYS}, x.hk::integer AS k, x.hv::bigint AS n
    FROM src CROSS JOIN LATERAL jsonb_each_text(src.latency_hist) AS x(hk, hv)
), {_merged("", "x", _KEYS)}, s AS (
    SELECT {_KEYS}, sum(count) AS count, sum(errors) AS errors, sum(duration_sum_ms) AS dsum,
           min(duration_min_ms) AS dmin, max(duration_max_ms) AS dmax, sum(input_tokens) AS itok,
           sum(output_tokens) AS otok, sum(cost_usd) AS cost, sum(quality_sum) AS qsum,
           sum(quality_count) AS qcount, sum(requests) AS requests, {_ROOTS.format("roots")} AS roots
    FROM src GROUP BY {_KEYS}
), ins AS (
    INSERT INTO {DAILY_TABLE} (bucket_start, {_KEYS}, {_VALUES})
    SELECT %(day)s, {_KEYS}, s.requests, s.count, s.errors, s.dsum, s.dmin, s.dmax, s.itok, s.otok, s.cost, s.qsum,
           s.qcount, s.roots, coalesce(h.ks, '{{}}'), coalesce(h.ns, '{{}}')
    FROM s LEFT JOIN h USING ({_KEYS})
), {_merged("o", "e", _OPERATION)}, ins_ops AS (
    INSERT INTO {OPS_TABLE} (bucket_start, service_name, operation, {_VALUES})
    SELECT %(day)s, service_name, operation, sum(s.requests), sum(s.count), sum(s.errors), sum(s.dsum), min(s.dmin),
           max(s.dmax), sum(s.itok), sum(s.otok), sum(s.cost), sum(s.qsum), sum(s.qcount), {_ROOTS.format("s.roots")},
           coalesce(min(ho.ks), '{{}}'), coalesce(min(ho.ns), '{{}}')
    FROM s LEFT JOIN ho USING (service_name, operation)
    GROUP BY service_name, operation
), {_merged("ho", "x", "bucket_start, " + _OPERATION)}, sho AS (
    SELECT bucket_start, service_name, operation, {_SCALARS} FROM src GROUP BY 1, 2, 3
), ins_hops AS (
    INSERT INTO {HOURLY_OPS_TABLE} (bucket_start, service_name, operation, {_VALUES})
    SELECT sho.*, coalesce(hho.ks, '{{}}'), coalesce(hho.ns, '{{}}')
    FROM sho LEFT JOIN hho USING (bucket_start, service_name, operation)
), {_merged("ha", "eho", "bucket_start")}, sha AS (
    SELECT bucket_start, {_SCALARS} FROM src GROUP BY 1
), ins_hall AS (
    INSERT INTO {HOURLY_ALL_TABLE} (bucket_start, {_VALUES})
    SELECT sha.*, coalesce(hha.ks, '{{}}'), coalesce(hha.ns, '{{}}') FROM sha LEFT JOIN hha USING (bucket_start)
)
INSERT INTO analytics_rollup_days (day, source_count, source_rows, source_keys, built_at)
SELECT %(day)s, coalesce(sum(count), 0), count(*), {_KEYED}, now() FROM src
ON CONFLICT (day) DO UPDATE SET source_count = excluded.source_count, source_rows = excluded.source_rows,
    source_keys = excluded.source_keys, built_at = excluded.built_at
"""

# The hourly caches for one ended hour of the running day (analytics_rollup_hours, migration 0015).
_BUILD_HOUR = f"""
WITH src AS MATERIALIZED (
    SELECT * FROM span_rollups_1h WHERE bucket_start = %(hour)s
), x AS MATERIALIZED (
    SELECT service_name, operation, x.hk::integer AS k, x.hv::bigint AS n
    FROM src CROSS JOIN LATERAL jsonb_each_text(src.latency_hist) AS x(hk, hv)
), {_merged("ho", "x", _OPERATION)}, sho AS (
    SELECT service_name, operation, {_SCALARS} FROM src GROUP BY 1, 2
), ins_hops AS (
    INSERT INTO {HOURLY_OPS_TABLE} (bucket_start, service_name, operation, {_VALUES})
    SELECT %(hour)s, sho.*, coalesce(hho.ks, '{{}}'), coalesce(hho.ns, '{{}}')
    FROM sho LEFT JOIN hho USING (service_name, operation)
), eha AS (
    SELECT k, sum(n) AS n FROM eho GROUP BY 1
), ins_hall AS (
    INSERT INTO {HOURLY_ALL_TABLE} (bucket_start, {_VALUES})
    SELECT %(hour)s, {_SCALARS}, coalesce((SELECT array_agg(k ORDER BY k) FROM eha), '{{}}'),
           coalesce((SELECT array_agg(n ORDER BY k) FROM eha), '{{}}')
    FROM src HAVING count(*) > 0
)
INSERT INTO analytics_rollup_hours (hour, source_count, source_rows, source_keys, built_at)
SELECT %(hour)s, coalesce(sum(count), 0), count(*), {_KEYED}, now() FROM src
ON CONFLICT (hour) DO UPDATE SET source_count = excluded.source_count, source_rows = excluded.source_rows,
    source_keys = excluded.source_keys, built_at = excluded.built_at
"""


Fingerprint = tuple[int, int, int | None]


def _fingerprints(
    conn: psycopg.Connection[Any], start: datetime, end: datetime, unit: str = "day"
) -> dict[datetime, Fingerprint]:
    rows = conn.execute(
        f"SELECT date_trunc(%s, bucket_start), sum(count)::bigint, count(*), {_KEYED} FROM span_rollups_1h"
        " WHERE bucket_start >= %s AND bucket_start < %s GROUP BY 1",
        (unit, start, end),
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def _recorded(rows: list[tuple[Any, ...]]) -> dict[datetime, Fingerprint]:
    return {r[0]: (int(r[1]), int(r[2]), None if r[3] is None else int(r[3])) for r in rows}


def refresh(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> int:
    """Make the cached days in [start, end) (UTC midnights, complete days only) match the hourly rollups.
    Returns how many days were rebuilt."""
    source = _fingerprints(conn, start, end)
    cached = _recorded(
        conn.execute(
            "SELECT day, source_count, source_rows, source_keys FROM analytics_rollup_days"
            " WHERE day >= %s AND day < %s",
            (start, end),
        ).fetchall()
    )
    stale = sorted(d for d in set(source) | set(cached) if source.get(d) != cached.get(d))
    for day in stale:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_NAMESPACE + day.isoformat(),))
            conn.execute(f"DELETE FROM {DAILY_TABLE} WHERE bucket_start = %s", (day,))
            conn.execute(f"DELETE FROM {OPS_TABLE} WHERE bucket_start = %s", (day,))
            for table, column in (
                (HOURLY_OPS_TABLE, "bucket_start"),
                (HOURLY_ALL_TABLE, "bucket_start"),
                (_HOURS, "hour"),
            ):
                conn.execute(
                    f"DELETE FROM {table} WHERE {column} >= %s AND {column} < %s", (day, day + timedelta(days=1))
                )
            if day in source:
                conn.execute(_BUILD, {"day": day})
            else:
                conn.execute("DELETE FROM analytics_rollup_days WHERE day = %s", (day,))
    if stale:
        _LOGGER.debug("analytics: rebuilt %d daily rollup(s)", len(stale))
    return len(stale)


def refresh_hours(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> int:
    """Make the cached hours in [start, end) (whole hours of the running day that have ended) match the hourly
    rollups. Returns how many hours were rebuilt."""
    source = _fingerprints(conn, start, end, "hour")
    cached = _recorded(
        conn.execute(
            f"SELECT hour, source_count, source_rows, source_keys FROM {_HOURS} WHERE hour >= %s AND hour < %s",
            (start, end),
        ).fetchall()
    )
    stale = sorted(h for h in set(source) | set(cached) if source.get(h) != cached.get(h))
    for hour in stale:
        day = hour.astimezone(UTC).replace(hour=0)
        with conn.transaction():
            # The day's lock: a day build (when the day has ended) rewrites these same hours.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_NAMESPACE + day.isoformat(),))
            for table in (HOURLY_OPS_TABLE, HOURLY_ALL_TABLE):
                conn.execute(f"DELETE FROM {table} WHERE bucket_start = %s", (hour,))
            if hour in source:
                conn.execute(_BUILD_HOUR, {"hour": hour})
            else:
                conn.execute(f"DELETE FROM {_HOURS} WHERE hour = %s", (hour,))
    return len(stale)


def running_hours(start: datetime, end: datetime, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """The ended hours of the running UTC day inside [start, end) (hour-aligned); None if there are none."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    first = max(start.astimezone(UTC), now.replace(hour=0, minute=0, second=0, microsecond=0))
    last = min(end.astimezone(UTC), now.replace(minute=0, second=0, microsecond=0))
    return (first, last) if last > first else None


def complete_days(start: datetime, end: datetime, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """The whole UTC days inside [start, end) that have ended by ``now``; None if there are none."""
    now = now or datetime.now(UTC)
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(days=1)
    limit = min(end, now).astimezone(UTC)
    last = limit.replace(hour=0, minute=0, second=0, microsecond=0)
    return (first, last) if last > first else None


def touched_days(start: datetime, end: datetime, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """The complete UTC days (ended by ``now``) that [start, end) touches, whole or in part; None if none."""
    now = now or datetime.now(UTC)
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_day = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if end_day < end:
        end_day += timedelta(days=1)
    last = min(end_day, now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    return (first, last) if last > first else None

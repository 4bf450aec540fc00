"""Root counts for rollup rows written before migration 0030, wherever the raw spans of their bucket are still stored.

0030 added ``roots`` (and, to ``span_rollups_unsampled_1h``, ``requests``) without a value for older rows: NULL,
"not counted", so a window that reads one shows no cost per request. The sink's background maintenance
(``backfill_roots``, next to the rollup compaction) counts them again from ``spans``, newest hour first, a few hours
per pass, each hour in its own short transaction under the compaction lock (the rows it fills are the ones a
compaction would merge; ingest only appends rows and is never blocked). Per rollup key and bucket, the stored rows'
uncounted part is the raw spans' count minus what the key's counted rows already hold; it goes to one of the key's
uncounted rows (0 to the others: readers sum a key's rows). A key is filled only when its raw spans still add up to
its rollup count (for head-sampled estimates: Σ (adjusted_count - 1)): where retention dropped the spans, or the
rollup dimensions changed since, the rows stay NULL. The analytics caches notice through their fingerprint, which
counts the uncounted rows (``collector/analytics/daily.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .rollups import COMPACTION_LOCK, ROLLUP_DIMENSIONS

__all__ = ["HOURS_PER_PASS", "RootsPass", "backfill_roots"]

# Hours filled per maintenance pass: each reads an hour of raw spans once, so a pass stays short on a busy sink, and
# 30 days of hours take 60 passes (ten minutes at the default compaction interval).
HOURS_PER_PASS = 12

# The hours whose rows are not all counted, newest first, among those raw spans may still cover.
_CANDIDATES = """
SELECT bucket_start FROM (
    SELECT bucket_start FROM span_rollups_1h
    WHERE roots IS NULL AND bucket_start >= %(oldest)s AND bucket_start < coalesce(%(before)s::timestamptz, 'infinity')
    UNION
    SELECT bucket_start FROM span_rollups_unsampled_1h
    WHERE roots IS NULL AND bucket_start >= %(oldest)s AND bucket_start < coalesce(%(before)s::timestamptz, 'infinity')
) AS h ORDER BY 1 DESC LIMIT %(limit)s
"""
_KEYS = "bucket_start, service_name, operation, status_code, tenant_id, agent_name, model"
_HOUR = "bucket_start >= %(hour)s AND bucket_start < %(hour)s + interval '1 hour'"
_T_HOUR = "t.bucket_start >= %(hour)s AND t.bucket_start < %(hour)s + interval '1 hour'"
_RAW_HOUR = "start_time >= %(hour)s AND start_time < %(hour)s + interval '1 hour'"
_SERVER_KIND = 2  # as rollups.py: a root or SERVER span is a request into its service

# span_rollups_1m / _1h: the spans stored, unweighted (as the write path counts them).
_FILL_ROLLUPS = f"""
WITH raw AS (
    SELECT date_trunc(%(unit)s, start_time, 'UTC') AS bucket_start, service_name, operation, status_code, {{dims}},
           count(*) AS n, count(*) FILTER (WHERE parent_span_id IS NULL) AS roots
    FROM spans WHERE {_RAW_HOUR} GROUP BY 1, 2, 3, 4, 5, 6, 7
), stored AS (
    SELECT {_KEYS}, sum(count) AS n, coalesce(sum(roots), 0) AS roots,
           array_agg(ctid ORDER BY ctid) FILTER (WHERE roots IS NULL) AS blank
    FROM {{table}} WHERE {_HOUR} GROUP BY {_KEYS} HAVING count(roots) < count(*)
), fill AS (
    SELECT s.blank, coalesce(r.roots, 0) - s.roots AS roots
    FROM stored AS s LEFT JOIN raw AS r USING ({_KEYS})
    WHERE coalesce(r.n, 0) = s.n AND coalesce(r.roots, 0) >= s.roots
), per_row AS (
    SELECT b.tid, CASE WHEN b.i = 1 THEN f.roots ELSE 0 END AS roots
    FROM fill AS f CROSS JOIN LATERAL unnest(f.blank) WITH ORDINALITY AS b(tid, i)
)
UPDATE {{table}} AS t SET roots = p.roots FROM per_row AS p
WHERE t.ctid = p.tid AND t.roots IS NULL AND {_T_HOUR}
"""
# span_rollups_unsampled_1h: what head-sampled spans stand for beyond themselves, Σ (adjusted_count - 1), as
# rollups.insert_spans_sql and sampling.unsampled_rows write it; counts are floats, compared to a relative 1e-9.
_FILL_UNSAMPLED = f"""
WITH raw AS (
    SELECT date_trunc('hour', start_time, 'UTC') AS bucket_start, service_name, operation, status_code, {{dims}},
           sum(adjusted_count - 1) AS n,
           coalesce(sum(adjusted_count - 1) FILTER (WHERE parent_span_id IS NULL OR kind = {_SERVER_KIND}), 0)
               AS requests,
           coalesce(sum(adjusted_count - 1) FILTER (WHERE parent_span_id IS NULL), 0) AS roots
    FROM spans WHERE {_RAW_HOUR} AND adjusted_count > 1 GROUP BY 1, 2, 3, 4, 5, 6, 7
), stored AS (
    SELECT {_KEYS}, sum(count) AS n, coalesce(sum(requests), 0) AS requests, coalesce(sum(roots), 0) AS roots,
           array_agg(ctid ORDER BY ctid) FILTER (WHERE roots IS NULL) AS blank
    FROM span_rollups_unsampled_1h WHERE {_HOUR} GROUP BY {_KEYS} HAVING count(roots) < count(*)
), fill AS (
    SELECT s.blank, coalesce(r.requests, 0) - s.requests AS requests, coalesce(r.roots, 0) - s.roots AS roots
    FROM stored AS s LEFT JOIN raw AS r USING ({_KEYS})
    WHERE abs(coalesce(r.n, 0) - s.n) <= 1e-9 * greatest(abs(s.n), 1)
), per_row AS (
    SELECT b.tid, CASE WHEN b.i = 1 THEN f.requests ELSE 0 END AS requests,
           CASE WHEN b.i = 1 THEN f.roots ELSE 0 END AS roots
    FROM fill AS f CROSS JOIN LATERAL unnest(f.blank) WITH ORDINALITY AS b(tid, i)
)
UPDATE span_rollups_unsampled_1h AS t SET requests = p.requests, roots = p.roots
FROM per_row AS p WHERE t.ctid = p.tid AND t.roots IS NULL AND {_T_HOUR}
"""


@dataclass(frozen=True)
class RootsPass:
    hours: int  # hours looked at
    filled: int  # rows given their root count
    before: datetime | None  # where the next pass goes on (older hours); None: nothing older is left to fill
    busy: bool = False  # another process held the compaction lock: try again next pass, from the same place


def _dims(dimensions: Sequence[str]) -> str:
    return ", ".join(f"coalesce({d}, '') AS {d}" if d in dimensions else f"''::text AS {d}" for d in ROLLUP_DIMENSIONS)


def _fill_hour(conn: psycopg.Connection[Any], hour: datetime, dims: str) -> int | None:
    """The rows of one hour (all three tables, one transaction); None if another process is compacting."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (COMPACTION_LOCK,)).fetchone()
        if not locked or not locked[0]:
            return None
        filled = 0
        for table, unit in (("span_rollups_1m", "minute"), ("span_rollups_1h", "hour")):
            query = _FILL_ROLLUPS.format(table=table, dims=dims)
            filled += conn.execute(query, {"hour": hour, "unit": unit}).rowcount
        filled += conn.execute(_FILL_UNSAMPLED.format(dims=dims), {"hour": hour}).rowcount
    return filled


def backfill_roots(
    conn: psycopg.Connection[Any],
    dimensions: Sequence[str],
    before: datetime | None = None,
    hours: int = HOURS_PER_PASS,
) -> RootsPass:
    """Count the roots of up to ``hours`` uncounted hours older than ``before`` (all of them: None), newest first.
    ``dimensions``: the sink's ``rollup_dimensions`` (the rollup keys' shape)."""
    oldest = conn.execute("SELECT min(range_start) FROM otel_partitions WHERE parent = 'spans'").fetchone()
    if oldest is None or oldest[0] is None:
        return RootsPass(0, 0, None)  # no raw spans at all: nothing can be counted
    bounds = {"oldest": oldest[0], "before": before, "limit": hours}
    found = [r[0] for r in conn.execute(_CANDIDATES, bounds).fetchall()]
    dims = _dims(dimensions)
    filled = 0
    for i, hour in enumerate(found):
        rows = _fill_hour(conn, hour, dims)
        if rows is None:
            return RootsPass(i, filled, found[i - 1] if i else before, busy=True)
        filled += rows
    return RootsPass(len(found), filled, found[-1] if found else None)

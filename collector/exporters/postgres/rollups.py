"""Rollups are appended: every batch adds one partial row per (minute or hour, key) it touched, in the transaction
that inserts its spans, computed from exactly the spans it inserted (so a redelivered span counts once).
``compact_rollups`` later merges each key's partial rows into one (migration 0021: ``otel_compact_rollups``).
Readers aggregate rows by key, so partial and merged rows read the same.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from . import histogram
from ._values import dumps
from .span_columns import span_position

__all__ = [
    "COMPACTION_LOCK",
    "ROLLUP_COLUMNS",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_KEY_COLUMNS",
    "ROLLUP_TABLES",
    "aggregate",
    "compact_rollups",
    "insert_spans_sql",
]

# The dimension columns rollups can carry; unconfigured ones hold ''.
ROLLUP_DIMENSIONS = ("tenant_id", "agent_name", "model")
_KEY = ("bucket_start", "service_name", "operation", "status_code", *ROLLUP_DIMENSIONS)
_KEYS = ", ".join(_KEY)
ROLLUP_TABLES = ("span_rollups_1m", "span_rollups_1h")
_VALUE_COLUMNS = (
    "count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens, "
    "cost_usd, quality_sum, quality_count, latency_hist, requests, roots"
)
# A span that is a request into its service: a root span, or kind SERVER (OTLP SPAN_KIND_SERVER = 2). A root span
# (no parent span id) is also the entry of its whole trace: ``roots`` counts each request once, whatever services
# it went on to enter (migration 0030).
_SERVER_KIND = 2


def _aggregate(source: str, bucket: str) -> str:
    """Per (key, latency bucket) partial sums of ``source`` rows re-bucketed to ``bucket``; then per key."""
    return f"""
        SELECT b AS bucket_start, service_name, operation, status_code, tenant_id, agent_name, model,
               sum(n)::bigint AS count, sum(errors)::bigint AS errors, sum(dsum) AS duration_sum_ms,
               min(dmin) AS duration_min_ms, max(dmax) AS duration_max_ms,
               sum(itok)::bigint AS input_tokens, sum(otok)::bigint AS output_tokens, sum(cost) AS cost_usd,
               sum(qsum) AS quality_sum, sum(qcount)::bigint AS quality_count,
               jsonb_object_agg(bi::text, n) AS latency_hist, sum(requests)::bigint AS requests,
               sum(roots)::bigint AS roots
        FROM (SELECT {bucket} AS b, service_name, operation, status_code, tenant_id, agent_name, model, bi,
                     sum(n) AS n, sum(errors) AS errors, sum(requests) AS requests, sum(roots) AS roots,
                     sum(dsum) AS dsum,
                     min(dmin) AS dmin, max(dmax) AS dmax, sum(itok) AS itok, sum(otok) AS otok,
                     sum(cost) AS cost, sum(qsum) AS qsum, sum(qcount) AS qcount
              FROM {source}
              GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS per_bucket
        GROUP BY b, service_name, operation, status_code, tenant_id, agent_name, model"""


def insert_spans_sql(staging: str, columns: Sequence[str], dimensions: Sequence[str]) -> str:
    """One statement: insert ``staging`` into ``spans`` (skipping known spans) and roll the new ones up.

    Returns one row: (spans inserted, 1m rollup rows added, 1h rollup rows added).
    """
    unknown = [d for d in dimensions if d not in ROLLUP_DIMENSIONS]
    if unknown:
        raise ValueError(f"rollup_dimensions: unknown {unknown}; expected some of {list(ROLLUP_DIMENSIONS)}")
    cols = ", ".join(columns)
    dims = ", ".join(f"coalesce({d}, '') AS {d}" if d in dimensions else f"''::text AS {d}" for d in ROLLUP_DIMENSIONS)
    minute = _aggregate("g", "date_trunc('minute', bucket_start)")
    hour = _aggregate("g", "date_trunc('hour', bucket_start)")
    return f"""
WITH ins AS (
    INSERT INTO spans ({cols}) SELECT {cols} FROM {staging}
    ON CONFLICT DO NOTHING
    RETURNING start_time, service_name, operation, status_code, tenant_id, agent_name, model, duration_ms,
              input_tokens, output_tokens, cost_usd, quality_score, parent_span_id, kind, adjusted_count
), g AS (
    SELECT date_trunc('minute', start_time) AS bucket_start, service_name, operation, status_code, {dims},
           otel_hist_bucket(duration_ms) AS bi,
           count(*) AS n, count(*) FILTER (WHERE status_code = 2) AS errors, sum(duration_ms) AS dsum,
           min(duration_ms) AS dmin, max(duration_ms) AS dmax,
           coalesce(sum(input_tokens), 0) AS itok, coalesce(sum(output_tokens), 0) AS otok,
           coalesce(sum(cost_usd), 0) AS cost, coalesce(sum(quality_score), 0) AS qsum,
           count(quality_score) AS qcount,
           count(*) FILTER (WHERE parent_span_id IS NULL OR kind = {_SERVER_KIND}) AS requests,
           count(*) FILTER (WHERE parent_span_id IS NULL) AS roots
    FROM ins
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
), up_1m AS (
    INSERT INTO span_rollups_1m ({_KEYS}, {_VALUE_COLUMNS}) SELECT * FROM ({minute}) AS m RETURNING 1
), up_1h AS (
    INSERT INTO span_rollups_1h ({_KEYS}, {_VALUE_COLUMNS}) SELECT * FROM ({hour}) AS h RETURNING 1
), up_unsampled AS (  -- head-sampled spans (sampling.unsampled_rows)
    INSERT INTO span_rollups_unsampled_1h ({_KEYS}, count, errors, input_tokens, output_tokens, cost_usd,
                                           requests, roots)
    SELECT date_trunc('hour', start_time), service_name, operation, status_code, {dims},
           sum(adjusted_count - 1), coalesce(sum(adjusted_count - 1) FILTER (WHERE status_code = 2), 0),
           coalesce(sum((adjusted_count - 1) * input_tokens), 0),
           coalesce(sum((adjusted_count - 1) * output_tokens), 0),
           round(coalesce(sum((adjusted_count - 1)::numeric * cost_usd), 0), 10),
           coalesce(sum(adjusted_count - 1) FILTER (WHERE parent_span_id IS NULL OR kind = {_SERVER_KIND}), 0),
           coalesce(sum(adjusted_count - 1) FILTER (WHERE parent_span_id IS NULL), 0)
    FROM ins WHERE adjusted_count > 1
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up_1m), (SELECT count(*) FROM up_1h)
"""


# Positions in a ``span_columns.SPAN_COLUMNS`` row.
_START, _DURATION, _STATUS, _SERVICE, _OPERATION = (
    span_position(c) for c in ("start_time", "duration_ms", "status_code", "service_name", "operation")
)
_DIM_POSITIONS = {d: span_position(d) for d in ("tenant_id", "agent_name", "model")}
_INPUT, _OUTPUT, _COST, _QUALITY, _PARENT, _KIND = (
    span_position(c) for c in ("input_tokens", "output_tokens", "cost_usd", "quality_score", "parent_span_id", "kind")
)
_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000
_INT8_MAX = 2**63 - 1

# (column, staging type) of a rollup key, in ``_KEY`` order: also the key of span_rollups_unsampled_1h.
ROLLUP_KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("bucket_start", "timestamptz"),
    ("service_name", "text"),
    ("operation", "text"),
    ("status_code", "int2"),
    *((dimension, "text") for dimension in ROLLUP_DIMENSIONS),
)
# (column, staging type) of a rollup row, in ``_KEY`` + ``_VALUE_COLUMNS`` order.
ROLLUP_COLUMNS: tuple[tuple[str, str], ...] = (
    *ROLLUP_KEY_COLUMNS,
    ("count", "int8"),
    ("errors", "int8"),
    ("duration_sum_ms", "float8"),
    ("duration_min_ms", "float8"),
    ("duration_max_ms", "float8"),
    ("input_tokens", "int8"),
    ("output_tokens", "int8"),
    ("cost_usd", "numeric"),
    ("quality_sum", "float8"),
    ("quality_count", "int8"),
    ("latency_hist", "jsonb"),
    ("requests", "int8"),
    ("roots", "int8"),
)


@dataclass
class CompactionResult:
    merged_keys: int = 0
    removed_rows: int = 0


# One compaction at a time per database (several sink processes may share one): the others skip their turn. The
# root backfill (roots.py) holds it too: it fills the rows a compaction would merge.
COMPACTION_LOCK = 0x6F74656C_0021  # "otel" + migration 0021


def compact_rollups(conn: psycopg.Connection[Any], since: datetime) -> CompactionResult | None:
    """Merge each key's partial rollup rows with ``bucket_start >= since`` into one row (both tables, one
    transaction). None if another process is compacting right now."""
    result = CompactionResult()
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (COMPACTION_LOCK,)).fetchone()
        if not locked or not locked[0]:
            return None
        for table in ROLLUP_TABLES:
            row = conn.execute("SELECT * FROM otel_compact_rollups(%s, %s)", (table, since)).fetchone()
            if row:
                result.merged_keys += int(row[0])
                result.removed_rows += int(row[1])
            # A key whose spans all moved to another key (owners.py) merged into a row of zeros; every row ingest
            # appends counts at least one span, so count = 0 is only such a row, and deleting it changes no sum.
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE bucket_start >= %s AND count = 0").format(sql.Identifier(table)),
                (since,),
            )
    return result


def aggregate(rows: Sequence[tuple[Any, ...]], dimensions: Sequence[str]) -> tuple[list[tuple[Any, ...]], ...]:
    """Per-minute and per-hour rollup rows (``ROLLUP_COLUMNS``) of span rows that are all newly inserted.

    The same arithmetic as the SQL in ``insert_spans_sql`` (and the same buckets as ``otel_hist_bucket``), done
    in Python when a batch went straight into ``spans`` by COPY.
    """
    positions = [_DIM_POSITIONS[d] if d in dimensions else None for d in ROLLUP_DIMENSIONS]
    p0, p1, p2 = positions
    # Group first, then aggregate each group with builtins (sum, min, max, Counter over lists): 40 % cheaper than
    # accumulating field by field per row. Sums run in row order, as the per-row loop did.
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in rows:
        start = row[_START]
        key = (
            start - start % _MINUTE_US,
            row[_SERVICE],
            row[_OPERATION],
            row[_STATUS],
            "" if p0 is None else row[p0] or "",
            "" if p1 is None else row[p1] or "",
            "" if p2 is None else row[p2] or "",
        )
        group = groups.get(key)
        if group is None:
            groups[key] = [row]
        else:
            group.append(row)
    log, ceil = math.log, math.ceil
    floor, ln_gamma = histogram.MIN_DURATION_MS, histogram.LN_GAMMA
    minutes: dict[tuple[Any, ...], list[Any]] = {}
    for key, group in groups.items():
        durations = [r[_DURATION] for r in group]
        qualities = [r[_QUALITY] for r in group if r[_QUALITY] is not None]
        # histogram.bucket_index, inlined: one call per span was a third of this function
        buckets = Counter([ceil(log(d if d > floor else floor) / ln_gamma) for d in durations])
        minutes[key] = [
            len(group),
            len(group) if key[3] == 2 else 0,
            sum(durations, 0.0),
            min(durations),
            max(durations),
            sum([r[_INPUT] for r in group if r[_INPUT] is not None]),
            sum([r[_OUTPUT] for r in group if r[_OUTPUT] is not None]),
            sum([r[_COST] for r in group if r[_COST] is not None]),
            sum(qualities, 0.0),
            len(qualities),
            dict(buckets),
            sum([1 for r in group if r[_PARENT] is None or r[_KIND] == _SERVER_KIND]),
            sum([1 for r in group if r[_PARENT] is None]),
        ]
    hours: dict[tuple[Any, ...], list[Any]] = {}
    for key, acc in minutes.items():
        hkey = (key[0] - key[0] % _HOUR_US, *key[1:])
        h = hours.get(hkey)
        if h is None:
            hours[hkey] = [*acc[:10], dict(acc[10]), acc[11], acc[12]]
            continue
        h[0] += acc[0]
        h[1] += acc[1]
        h[2] += acc[2]
        h[3] = min(h[3], acc[3])
        h[4] = max(h[4], acc[4])
        for j in (5, 6, 7, 8, 9, 11, 12):
            h[j] += acc[j]
        for i, n in acc[10].items():
            h[10][i] = h[10].get(i, 0) + n
    return _rows(minutes), _rows(hours)


def _rows(groups: dict[tuple[Any, ...], list[Any]]) -> list[tuple[Any, ...]]:
    out = []
    for key in sorted(groups):
        acc = groups[key]
        out.append((
            *key,
            acc[0], acc[1], acc[2], acc[3], acc[4],
            min(acc[5], _INT8_MAX), min(acc[6], _INT8_MAX), acc[7], acc[8], acc[9],
            dumps(acc[10]), acc[11], acc[12],
        ))  # fmt: skip
    return out

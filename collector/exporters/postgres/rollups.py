"""The statement that inserts staged spans and updates ``span_rollups_1m`` / ``span_rollups_1h`` from exactly
the spans it inserted (``RETURNING``), so a redelivered span counts once. Rollup rows are written in key order
so that concurrent sink processes lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ROLLUP_DIMENSIONS", "insert_spans_sql"]

# The dimension columns rollups can carry; unconfigured ones hold ''.
ROLLUP_DIMENSIONS = ("tenant_id", "agent_name", "model")
_KEY = ("bucket_start", "service_name", "operation", "status_code", *ROLLUP_DIMENSIONS)
_KEYS = ", ".join(_KEY)
_ORDER = ", ".join(str(i) for i in range(1, len(_KEY) + 1))
_VALUE_COLUMNS = (
    "count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens, "
    "cost_usd, quality_sum, quality_count, latency_hist"
)
_UPSERT = """
    ON CONFLICT ({keys}) DO UPDATE SET
        count = r.count + excluded.count,
        errors = r.errors + excluded.errors,
        duration_sum_ms = r.duration_sum_ms + excluded.duration_sum_ms,
        duration_min_ms = least(r.duration_min_ms, excluded.duration_min_ms),
        duration_max_ms = greatest(r.duration_max_ms, excluded.duration_max_ms),
        input_tokens = r.input_tokens + excluded.input_tokens,
        output_tokens = r.output_tokens + excluded.output_tokens,
        cost_usd = r.cost_usd + excluded.cost_usd,
        quality_sum = r.quality_sum + excluded.quality_sum,
        quality_count = r.quality_count + excluded.quality_count,
        latency_hist = otel_hist_merge(r.latency_hist, excluded.latency_hist)
    RETURNING 1"""


def _aggregate(source: str, bucket: str) -> str:
    """Per (key, latency bucket) partial sums of ``source`` rows re-bucketed to ``bucket``; then per key."""
    return f"""
        SELECT b AS bucket_start, service_name, operation, status_code, tenant_id, agent_name, model,
               sum(n)::bigint AS count, sum(errors)::bigint AS errors, sum(dsum) AS duration_sum_ms,
               min(dmin) AS duration_min_ms, max(dmax) AS duration_max_ms,
               sum(itok)::bigint AS input_tokens, sum(otok)::bigint AS output_tokens, sum(cost) AS cost_usd,
               sum(qsum) AS quality_sum, sum(qcount)::bigint AS quality_count,
               jsonb_object_agg(bi::text, n) AS latency_hist
        FROM (SELECT {bucket} AS b, service_name, operation, status_code, tenant_id, agent_name, model, bi,
                     sum(n) AS n, sum(errors) AS errors, sum(dsum) AS dsum, min(dmin) AS dmin, max(dmax) AS
                     dmax, sum(itok) AS itok, sum(otok) AS otok, sum(cost) AS cost, sum(qsum) AS qsum,
                     sum(qcount) AS qcount
              FROM {source}
              GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS per_bucket
        GROUP BY b, service_name, operation, status_code, tenant_id, agent_name, model"""


def insert_spans_sql(staging: str, columns: Sequence[str], dimensions: Sequence[str]) -> str:
    """One statement: insert ``staging`` into ``spans`` (skipping known spans) and roll the new ones up.

    Returns one row: (spans inserted, 1m rollup rows touched, 1h rollup rows touched).
    """
    unknown = [d for d in dimensions if d not in ROLLUP_DIMENSIONS]
    if unknown:
        raise ValueError(f"rollup_dimensions: unknown {unknown}; expected some of {list(ROLLUP_DIMENSIONS)}")
    cols = ", ".join(columns)
    dims = ", ".join(
        f"coalesce({d}, '') AS {d}" if d in dimensions else f"''::text AS {d}" for d in ROLLUP_DIMENSIONS
    )
    minute = _aggregate("g", "date_trunc('minute', bucket_start)")
    hour = _aggregate("g", "date_trunc('hour', bucket_start)")
    return f"""
WITH ins AS (
    INSERT INTO spans ({cols}) SELECT {cols} FROM {staging}
    ON CONFLICT DO NOTHING
    RETURNING start_time, service_name, operation, status_code, tenant_id, agent_name, model, duration_ms,
              input_tokens, output_tokens, cost_usd, quality_score
), g AS (
    SELECT date_trunc('minute', start_time) AS bucket_start, service_name, operation, status_code, {dims},
           otel_hist_bucket(duration_ms) AS bi,
           count(*) AS n, count(*) FILTER (WHERE status_code = 2) AS errors, sum(duration_ms) AS dsum,
           min(duration_ms) AS dmin, max(duration_ms) AS dmax,
           coalesce(sum(input_tokens), 0) AS itok, coalesce(sum(output_tokens), 0) AS otok,
           coalesce(sum(cost_usd), 0) AS cost, coalesce(sum(quality_score), 0) AS qsum,
           count(quality_score) AS qcount
    FROM ins
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
), up_1m AS (
    INSERT INTO span_rollups_1m AS r ({_KEYS}, {_VALUE_COLUMNS})
    SELECT * FROM ({minute}) AS m ORDER BY {_ORDER}
    {_UPSERT.format(keys=_KEYS)}
), up_1h AS (
    INSERT INTO span_rollups_1h AS r ({_KEYS}, {_VALUE_COLUMNS})
    SELECT * FROM ({hour}) AS h ORDER BY {_ORDER}
    {_UPSERT.format(keys=_KEYS)}
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up_1m), (SELECT count(*) FROM up_1h)
"""

-- 0030: rollups count root spans (no parent span id): each is the entry of a whole trace, so cost per request
-- across services divides by roots, not by `requests` (0024), which counts a request once per service it entered.
-- No default: rows written before this migration (or by a process that predates it) hold NULL, "not counted",
-- and sums that meet one stay NULL (compaction, the analytics caches), so readers can tell an unknown count from
-- zero. `span_rollups_unsampled_1h` gains what head-sampled spans stand for in both counts, NULL alike.
ALTER TABLE span_rollups_1m ADD COLUMN IF NOT EXISTS roots bigint;
ALTER TABLE span_rollups_1h ADD COLUMN IF NOT EXISTS roots bigint;
ALTER TABLE span_rollups_unsampled_1h ADD COLUMN IF NOT EXISTS requests double precision;
ALTER TABLE span_rollups_unsampled_1h ADD COLUMN IF NOT EXISTS roots double precision;
ALTER TABLE analytics_rollups_1d ADD COLUMN IF NOT EXISTS roots bigint;
ALTER TABLE analytics_rollups_1d_ops ADD COLUMN IF NOT EXISTS roots bigint;
ALTER TABLE analytics_rollups_1h_ops ADD COLUMN IF NOT EXISTS roots bigint;
ALTER TABLE analytics_rollups_1h_all ADD COLUMN IF NOT EXISTS roots bigint;

-- As in 0024, with `roots` summed only when every merged row counted them (else NULL: unknown).
CREATE OR REPLACE FUNCTION otel_compact_rollups(tbl regclass, since timestamptz)
RETURNS TABLE (merged_keys bigint, removed_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    k text := 'bucket_start, service_name, operation, status_code, tenant_id, agent_name, model';
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH dup AS (
            SELECT %1$s FROM %2$s WHERE bucket_start >= $1 GROUP BY %1$s HAVING count(*) > 1
        ), moved AS (
            DELETE FROM %2$s AS r USING dup
            WHERE r.bucket_start >= $1
              AND (r.bucket_start, r.service_name, r.operation, r.status_code, r.tenant_id, r.agent_name, r.model)
                = (dup.bucket_start, dup.service_name, dup.operation, dup.status_code, dup.tenant_id,
                   dup.agent_name, dup.model)
            RETURNING r.*
        ), sums AS (
            SELECT %1$s, sum(count)::bigint AS count, sum(errors)::bigint AS errors,
                   sum(duration_sum_ms) AS duration_sum_ms, min(duration_min_ms) AS duration_min_ms,
                   max(duration_max_ms) AS duration_max_ms, sum(input_tokens)::bigint AS input_tokens,
                   sum(output_tokens)::bigint AS output_tokens, sum(cost_usd) AS cost_usd,
                   sum(quality_sum) AS quality_sum, sum(quality_count)::bigint AS quality_count,
                   sum(requests)::bigint AS requests,
                   CASE WHEN count(roots) = count(*) THEN sum(roots) END::bigint AS roots, count(*) AS n
            FROM moved GROUP BY %1$s
        ), buckets AS (
            SELECT %1$s, e.b, sum(e.c::bigint) AS c
            FROM moved CROSS JOIN LATERAL jsonb_each_text(moved.latency_hist) AS e(b, c)
            GROUP BY %1$s, e.b
        ), hists AS (
            SELECT %1$s, jsonb_object_agg(b, c) AS latency_hist FROM buckets GROUP BY %1$s
        ), ins AS (
            INSERT INTO %2$s (%1$s, count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens,
                              output_tokens, cost_usd, quality_sum, quality_count, latency_hist, requests, roots)
            SELECT %1$s, s.count, s.errors, s.duration_sum_ms, s.duration_min_ms, s.duration_max_ms,
                   s.input_tokens, s.output_tokens, s.cost_usd, s.quality_sum, s.quality_count,
                   coalesce(h.latency_hist, '{}'::jsonb), s.requests, s.roots
            FROM sums AS s LEFT JOIN hists AS h USING (%1$s)
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM ins), (SELECT coalesce(sum(n), 0)::bigint FROM sums)
    $q$, k, tbl) USING since;
END
$$;

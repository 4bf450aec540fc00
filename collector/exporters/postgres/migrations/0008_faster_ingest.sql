-- 0008: cheaper ingest.
-- otel_hist_merge walks only the second histogram's buckets (the per-batch one, small) and overlays them on the
-- first with `||`, instead of unnesting and regrouping both: the rollup upsert calls it for every existing row.
CREATE OR REPLACE FUNCTION otel_hist_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL OR a = '{}'::jsonb THEN coalesce(b, '{}'::jsonb)
        WHEN b IS NULL OR b = '{}'::jsonb THEN a
        ELSE a || (SELECT jsonb_object_agg(key, value::bigint + coalesce((a ->> key)::bigint, 0))
                   FROM jsonb_each_text(b))
    END
$$;

-- Lookups by trace id use the primary key (trace_id, span_id, start_time), whose leading column it is; a second
-- B-tree on trace_id alone only cost every insert.
DROP INDEX IF EXISTS spans_trace_id;

-- 0007: otel_ensure_partition tolerates a concurrent creator. The advisory lock serialises creators, but a
-- session's catalog cache may not yet show a partition another session just committed, so "already exists"
-- means done, not failure.
CREATE OR REPLACE FUNCTION otel_ensure_partition(parent text, ts timestamptz, step interval) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    range_start timestamptz := date_bin(step, ts, timestamptz '1970-01-01 00:00:00+00');
    range_end timestamptz := range_start + step;
    suffix text := to_char(range_start AT TIME ZONE 'UTC', 'YYYYMMDD');
    name text;
    schema_name text := current_schema();
BEGIN
    IF step < interval '1 day' THEN
        suffix := suffix || '_' || to_char(range_start AT TIME ZONE 'UTC', 'HH24MI');
    END IF;
    name := parent || '_p' || suffix;
    IF to_regclass(format('%I.%I', schema_name, name)) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('otel_metrics.partition:' || schema_name || '.' || parent));
        BEGIN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                           schema_name, name, schema_name, parent, range_start, range_end);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;  -- created by a concurrent session
        END;
    END IF;
    INSERT INTO otel_partitions (partition, parent, range_start, range_end)
    VALUES (name, parent, range_start, range_end)
    ON CONFLICT (partition) DO NOTHING;
    RETURN name;
END
$$;

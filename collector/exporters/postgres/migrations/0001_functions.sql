-- 0001: SQL helpers shared by the sink and analytics: log-bucketed latency histograms and time partitions.

-- Latency histograms are jsonb objects {"<bucket index>": count}; bucket i holds durations d (ms, clamped to
-- >= 0.001) with ceil(ln(d) / ln(1.02)) = i, represented by 2 * 1.02^i / 2.02 (< 1 % from any value in it).
CREATE OR REPLACE FUNCTION otel_hist_bucket(d double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ceil(ln(greatest(coalesce(d, 0.001), 0.001)) / ln(1.02))::integer
$$;

CREATE OR REPLACE FUNCTION otel_hist_bucket_value(i integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 2.0 * power(1.02::double precision, i) / 2.02
$$;

CREATE OR REPLACE FUNCTION otel_hist_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL OR a = '{}'::jsonb THEN coalesce(b, '{}'::jsonb)
        WHEN b IS NULL OR b = '{}'::jsonb THEN a
        ELSE (
            SELECT jsonb_object_agg(k, n)
            FROM (
                SELECT k, sum(v::bigint) AS n
                FROM (SELECT key, value FROM jsonb_each_text(a)
                      UNION ALL
                      SELECT key, value FROM jsonb_each_text(b)) AS e(k, v)
                GROUP BY k
            ) AS s
        )
    END
$$;

DROP AGGREGATE IF EXISTS otel_hist_sum(jsonb);
CREATE AGGREGATE otel_hist_sum(jsonb) (
    SFUNC = otel_hist_merge,
    STYPE = jsonb,
    INITCOND = '{}',
    PARALLEL = SAFE
);

-- Quantile q in [0, 1] with numpy's default ("linear") definition: rank q * (n - 1) between the order statistics
-- floor(rank) and ceil(rank), each replaced by its bucket's representative value, so the result is within 1 % of
-- the exact percentile of the same values. NULL for an empty histogram.
CREATE OR REPLACE FUNCTION otel_hist_quantile(h jsonb, q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total bigint;
    rank double precision;
    lo bigint;
    hi bigint;
    lo_value double precision;
    hi_value double precision;
    seen bigint := 0;
    b record;
BEGIN
    IF h IS NULL OR q IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT sum(value::bigint) INTO total FROM jsonb_each_text(h);
    IF total IS NULL OR total <= 0 THEN
        RETURN NULL;
    END IF;
    rank := least(greatest(q, 0.0), 1.0) * (total - 1);
    lo := floor(rank)::bigint;
    hi := ceil(rank)::bigint;
    FOR b IN SELECT key::integer AS i, value::bigint AS n FROM jsonb_each_text(h) ORDER BY key::integer LOOP
        IF lo_value IS NULL AND lo < seen + b.n THEN
            lo_value := otel_hist_bucket_value(b.i);
        END IF;
        IF hi < seen + b.n THEN
            hi_value := otel_hist_bucket_value(b.i);
            EXIT;
        END IF;
        seen := seen + b.n;
    END LOOP;
    RETURN lo_value + (hi_value - lo_value) * (rank - lo);
END
$$;

-- Time partitions. Every range-partitioned table gets one partition per `step` (aligned to the Unix epoch),
-- created ahead of time by the sink and on demand for late or early data; retention drops whole partitions.
CREATE TABLE IF NOT EXISTS otel_partitions (
    partition   text PRIMARY KEY,
    parent      text NOT NULL,
    range_start timestamptz NOT NULL,
    range_end   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS otel_partitions_parent_end ON otel_partitions (parent, range_end);

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
    IF to_regclass(format('%I.%I', schema_name, name)) IS NOT NULL THEN
        RETURN name;
    END IF;
    -- Several sink processes may ask for the same partition at once.
    PERFORM pg_advisory_xact_lock(hashtext('otel_metrics.partition:' || schema_name || '.' || parent));
    IF to_regclass(format('%I.%I', schema_name, name)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       schema_name, name, schema_name, parent, range_start, range_end);
    END IF;
    INSERT INTO otel_partitions (partition, parent, range_start, range_end)
    VALUES (name, parent, range_start, range_end)
    ON CONFLICT (partition) DO NOTHING;
    RETURN name;
END
$$;

-- Drops the partitions of `parent` whose whole range ends at or before `older_than`; returns their names.
CREATE OR REPLACE FUNCTION otel_drop_partitions(parent_name text, older_than timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT partition FROM otel_partitions
             WHERE parent = parent_name AND range_end <= older_than
             ORDER BY range_start LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I.%I', current_schema(), p.partition);
        DELETE FROM otel_partitions WHERE partition = p.partition;
        RETURN NEXT p.partition;
    END LOOP;
END
$$;

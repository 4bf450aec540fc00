-- 0014 (analytics): the hourly rollups of complete UTC days re-cut for analytics, built and invalidated with the
-- daily cache (same analytics_rollup_days fingerprint): per (hour, service, operation), and per hour across
-- everything. Histograms as sorted arrays (bucket ids, counts), which unnest far faster than jsonb. Hour-resolution
-- series over long windows and the ragged hours at a long window's edges read these instead of span_rollups_1h.
CREATE TABLE IF NOT EXISTS analytics_rollups_1h_ops (
    bucket_start    timestamptz NOT NULL,
    service_name    text NOT NULL,
    operation       text NOT NULL,
    count           bigint NOT NULL,
    errors          bigint NOT NULL,
    duration_sum_ms double precision NOT NULL,
    duration_min_ms double precision NOT NULL,
    duration_max_ms double precision NOT NULL,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    cost_usd        numeric NOT NULL DEFAULT 0,
    quality_sum     double precision NOT NULL DEFAULT 0,
    quality_count   bigint NOT NULL DEFAULT 0,
    hist_keys       integer[] NOT NULL,
    hist_counts     bigint[] NOT NULL,
    PRIMARY KEY (bucket_start, service_name, operation)
);

CREATE TABLE IF NOT EXISTS analytics_rollups_1h_all (
    bucket_start    timestamptz PRIMARY KEY,
    count           bigint NOT NULL,
    errors          bigint NOT NULL,
    duration_sum_ms double precision NOT NULL,
    duration_min_ms double precision NOT NULL,
    duration_max_ms double precision NOT NULL,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    cost_usd        numeric NOT NULL DEFAULT 0,
    quality_sum     double precision NOT NULL DEFAULT 0,
    quality_count   bigint NOT NULL DEFAULT 0,
    hist_keys       integer[] NOT NULL,
    hist_counts     bigint[] NOT NULL
);

-- Days cached before this migration have no hourly rows: forget them so the next query rebuilds them whole.
DELETE FROM analytics_rollup_days;

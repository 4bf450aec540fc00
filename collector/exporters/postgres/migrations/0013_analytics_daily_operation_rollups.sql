-- 0013 (analytics): the daily cache again at (service, operation) granularity, across statuses, tenants, agents
-- and models: what unfiltered month-long reports per operation or per day need, with about 6x fewer histogram
-- entries to merge. Built and invalidated together with analytics_rollups_1d (same analytics_rollup_days row).
CREATE TABLE IF NOT EXISTS analytics_rollups_1d_ops (
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

-- 0012 (analytics): per-day merges of span_rollups_1h, a cache analytics builds for complete UTC days so that
-- month-long reports read 24x fewer rows. Same key as the hourly rollups; the latency histogram is kept as two
-- sorted arrays (bucket indexes, counts), which unnest far faster than jsonb. A day is rebuilt whenever the
-- fingerprint of its hourly rows (sum of count, number of rows) changes, e.g. after late data or retention.
CREATE TABLE IF NOT EXISTS analytics_rollups_1d (
    bucket_start    timestamptz NOT NULL,
    service_name    text NOT NULL,
    operation       text NOT NULL,
    status_code     smallint NOT NULL,
    tenant_id       text NOT NULL DEFAULT '',
    agent_name      text NOT NULL DEFAULT '',
    model           text NOT NULL DEFAULT '',
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
    PRIMARY KEY (bucket_start, service_name, operation, status_code, tenant_id, agent_name, model)
);

CREATE TABLE IF NOT EXISTS analytics_rollup_days (
    day          timestamptz PRIMARY KEY,
    source_count bigint NOT NULL,
    source_rows  bigint NOT NULL,
    built_at     timestamptz NOT NULL DEFAULT now()
);

-- 0003: per-minute and per-hour span rollups, maintained at ingest only from newly inserted spans.
-- Dimensions not configured in `rollup_dimensions` hold ''.
CREATE TABLE IF NOT EXISTS span_rollups_1m (
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
    latency_hist    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket_start, service_name, operation, status_code, tenant_id, agent_name, model)
);
CREATE INDEX IF NOT EXISTS span_rollups_1m_service_time ON span_rollups_1m (service_name, operation, bucket_start);

CREATE TABLE IF NOT EXISTS span_rollups_1h (LIKE span_rollups_1m INCLUDING ALL);
CREATE INDEX IF NOT EXISTS span_rollups_1h_service_time ON span_rollups_1h (service_name, operation, bucket_start);

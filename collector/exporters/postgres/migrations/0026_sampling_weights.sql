-- 0026: head-sampled spans weigh what they stand for. `spans.adjusted_count` is a span's adjusted count (1 / its
-- sampling probability, from OpenTelemetry's `ot=th:` threshold in its W3C tracestate or the
-- `sampler.adjusted_count` attribute); NULL means 1 (not sampled, or sampled with probability 1).
-- `span_rollups_unsampled_1h` holds, per hourly rollup key, what the spans sampling left out are estimated to add:
-- the sums of (adjusted_count - 1) x value over the key's sampled spans. A separate append-only table, not columns of
-- span_rollups_1h, so that the rollups, their compaction and the analytics caches built from them stay as they are;
-- it only has rows where sampled spans were stored. Readers add it to span_rollups_1h per key (sums).
ALTER TABLE spans ADD COLUMN IF NOT EXISTS adjusted_count double precision;

CREATE TABLE IF NOT EXISTS span_rollups_unsampled_1h (
    bucket_start    timestamptz NOT NULL,
    service_name    text COLLATE "C" NOT NULL,
    operation       text COLLATE "C" NOT NULL,
    status_code     smallint NOT NULL,
    tenant_id       text COLLATE "C" NOT NULL DEFAULT '',
    agent_name      text COLLATE "C" NOT NULL DEFAULT '',
    model           text COLLATE "C" NOT NULL DEFAULT '',
    count           double precision NOT NULL,
    errors          double precision NOT NULL,
    input_tokens    double precision NOT NULL,
    output_tokens   double precision NOT NULL,
    cost_usd        numeric NOT NULL
);
CREATE INDEX IF NOT EXISTS span_rollups_unsampled_1h_key
    ON span_rollups_unsampled_1h (bucket_start, service_name, operation, status_code, tenant_id, agent_name, model);

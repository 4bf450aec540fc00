-- 0006: what the sink repaired or could not store. A repaired item is also in its table; a quarantined one only
-- here, with the serialized OTLP item so it can be replayed after a fix. `item_key` (span: trace id + span id;
-- metric point: stream id + time; log: log id) makes redelivery record nothing twice.
CREATE TABLE IF NOT EXISTS quarantine (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    signal        text NOT NULL,      -- traces | metrics | logs
    action        text NOT NULL,      -- repaired | quarantined
    reason        text NOT NULL,
    item_key      bytea NOT NULL,
    trace_id      bytea,
    span_id       bytea,
    item          bytea               -- serialized OTLP Span / Metric / LogRecord (quarantined items)
);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_item ON quarantine (signal, action, item_key);
CREATE INDEX IF NOT EXISTS quarantine_received_at ON quarantine (received_at);

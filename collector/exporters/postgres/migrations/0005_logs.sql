-- 0005: log records. `log_id` is a content hash (resource, scope, record), so redelivery inserts nothing twice.
CREATE TABLE IF NOT EXISTS logs (
    log_id                bytea NOT NULL,
    time                  timestamptz NOT NULL,  -- time_unix_nano, else observed_time_unix_nano
    observed_time         timestamptz,
    severity_number       smallint NOT NULL DEFAULT 0,
    severity_text         text,
    body                  text,                  -- string body as is; structured bodies as JSON text
    body_json             jsonb,                 -- structured (map / array) bodies
    event_name            text,
    trace_id              bytea,
    span_id               bytea,
    flags                 integer NOT NULL DEFAULT 0,
    service_name          text NOT NULL,
    scope_name            text,
    scope_version         text,
    correlation_id        text,
    attributes            jsonb NOT NULL DEFAULT '{}',
    resource_attributes   jsonb NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (log_id, time)
) PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS logs_time_brin ON logs USING brin (time);
CREATE INDEX IF NOT EXISTS logs_service_severity_time ON logs (service_name, severity_number, time);
CREATE INDEX IF NOT EXISTS logs_trace_id ON logs (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_correlation_id ON logs (correlation_id) WHERE correlation_id IS NOT NULL;

-- 0002: spans, their events (exceptions as queryable rows) and links. Range-partitioned by the span's start time
-- so that retention drops a span together with its events and links.
CREATE TABLE IF NOT EXISTS spans (
    trace_id              bytea NOT NULL,
    span_id               bytea NOT NULL,
    parent_span_id        bytea,
    trace_state           text,
    start_time            timestamptz NOT NULL,
    end_time              timestamptz NOT NULL,
    duration_ms           double precision NOT NULL,
    name                  text NOT NULL,
    kind                  smallint NOT NULL,
    status_code           smallint NOT NULL,
    status_message        text,
    service_name          text NOT NULL,
    scope_name            text,
    scope_version         text,
    operation             text NOT NULL,
    correlation_id        text,
    tenant_id             text,
    user_id               text,
    session_id            text,
    agent_name            text,
    agent_role            text,
    feature               text,
    model                 text,
    provider              text,
    input_tokens          bigint,
    output_tokens         bigint,
    cost_usd              numeric(20, 10),
    quality_score         double precision,
    error_type            text,
    http_route            text,
    http_status_code      integer,
    attributes            jsonb NOT NULL DEFAULT '{}',
    resource_attributes   jsonb NOT NULL DEFAULT '{}',
    flags                 integer NOT NULL DEFAULT 0,
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    dropped_events_count  integer NOT NULL DEFAULT 0,
    dropped_links_count   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX IF NOT EXISTS spans_start_time_brin ON spans USING brin (start_time);
CREATE INDEX IF NOT EXISTS spans_service_operation_time ON spans (service_name, operation, start_time);
CREATE INDEX IF NOT EXISTS spans_trace_id ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_correlation_id ON spans (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS span_events (
    trace_id              bytea NOT NULL,
    span_id               bytea NOT NULL,
    span_start_time       timestamptz NOT NULL,
    event_index           integer NOT NULL,
    time                  timestamptz NOT NULL,
    name                  text NOT NULL,
    service_name          text NOT NULL,
    exception_type        text,
    exception_message     text,
    exception_stacktrace  text,
    attributes            jsonb NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, span_start_time, event_index)
) PARTITION BY RANGE (span_start_time);
CREATE INDEX IF NOT EXISTS span_events_time_brin ON span_events USING brin (span_start_time);
CREATE INDEX IF NOT EXISTS span_events_exception_type ON span_events (exception_type, span_start_time)
    WHERE exception_type IS NOT NULL;

CREATE TABLE IF NOT EXISTS span_links (
    trace_id              bytea NOT NULL,
    span_id               bytea NOT NULL,
    span_start_time       timestamptz NOT NULL,
    link_index            integer NOT NULL,
    linked_trace_id       bytea NOT NULL,
    linked_span_id        bytea NOT NULL,
    trace_state           text,
    flags                 integer NOT NULL DEFAULT 0,
    attributes            jsonb NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, span_start_time, link_index)
) PARTITION BY RANGE (span_start_time);
CREATE INDEX IF NOT EXISTS span_links_linked_trace ON span_links (linked_trace_id);

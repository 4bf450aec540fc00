-- 0004: metric data points of all five kinds. One row per point; `stream_id` identifies the time series
-- (hash of resource attributes, scope, metric name, unit, type and point attributes), unique with `time`.
CREATE TABLE IF NOT EXISTS metric_points (
    stream_id             bytea NOT NULL,
    time                  timestamptz NOT NULL,
    start_time            timestamptz,
    metric_name           text NOT NULL,
    metric_type           text NOT NULL,  -- gauge | sum | histogram | exponential_histogram | summary
    description           text,
    unit                  text,
    temporality           smallint,       -- AggregationTemporality: 1 delta, 2 cumulative (sum, histograms)
    is_monotonic          boolean,        -- sum only
    service_name          text NOT NULL,
    scope_name            text,
    scope_version         text,
    value                 double precision,  -- gauge / sum (as_int converted)
    value_int             bigint,            -- gauge / sum when the point carried as_int
    count                 bigint,            -- histogram, exponential histogram, summary
    sum                   double precision,
    min                   double precision,
    max                   double precision,
    bucket_counts         bigint[],          -- histogram
    explicit_bounds       double precision[],
    scale                 integer,           -- exponential histogram
    zero_count            bigint,
    zero_threshold        double precision,
    positive_offset       integer,
    positive_bucket_counts bigint[],
    negative_offset       integer,
    negative_bucket_counts bigint[],
    quantile_values       jsonb,             -- summary: [{"quantile": q, "value": v}]
    exemplars             jsonb,             -- [{"time": ns, "value": v, "trace_id": hex, "span_id": hex, "attributes": {}}]
    flags                 integer NOT NULL DEFAULT 0,
    attributes            jsonb NOT NULL DEFAULT '{}',
    resource_attributes   jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (stream_id, time)
) PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS metric_points_time_brin ON metric_points USING brin (time);
CREATE INDEX IF NOT EXISTS metric_points_name_time ON metric_points (metric_name, time);
CREATE INDEX IF NOT EXISTS metric_points_service_name_time ON metric_points (service_name, metric_name, time);

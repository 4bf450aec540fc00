-- 0015 (analytics): fingerprints of the hours of the running UTC day cached in analytics_rollups_1h_ops/_all
-- (0014), so that long windows ending now read only the current hour from span_rollups_1h. Same rule as
-- analytics_rollup_days: an hour whose (sum of count, number of rows) in span_rollups_1h changed is rebuilt. When
-- the day ends it is cached whole and its hours here are dropped.
CREATE TABLE IF NOT EXISTS analytics_rollup_hours (
    hour         timestamptz PRIMARY KEY,
    source_count bigint NOT NULL,
    source_rows  bigint NOT NULL,
    built_at     timestamptz NOT NULL DEFAULT now()
);

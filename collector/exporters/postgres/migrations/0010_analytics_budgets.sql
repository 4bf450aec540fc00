-- 0010 (analytics): spending budgets per agent, tenant or model and period; managed by `otel-metrics budgets`
-- and the analytics API. Spend is read from span_rollups_1h (the matching rollup dimension).
CREATE TABLE IF NOT EXISTS budgets (
    scope          text NOT NULL CHECK (scope IN ('agent', 'tenant', 'model')),
    name           text NOT NULL,
    period         text NOT NULL CHECK (period IN ('day', 'week', 'month')),
    amount_usd     numeric(20, 6) NOT NULL CHECK (amount_usd >= 0),
    warning_ratio  double precision NOT NULL DEFAULT 0.8 CHECK (warning_ratio > 0),
    critical_ratio double precision NOT NULL DEFAULT 1.0 CHECK (critical_ratio > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name, period),
    CHECK (warning_ratio <= critical_ratio)
);

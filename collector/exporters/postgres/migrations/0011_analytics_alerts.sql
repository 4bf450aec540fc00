-- 0011 (analytics): alerts raised by the analytics alert rules. Lifecycle active -> acknowledged -> resolved.
-- At most one open (not resolved) alert per fingerprint (rule + scope): a rule that keeps firing updates it.
CREATE TABLE IF NOT EXISTS alerts (
    id              bigserial PRIMARY KEY,
    fingerprint     text NOT NULL,
    rule            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('warning', 'critical')),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'acknowledged', 'resolved')),
    scope           text NOT NULL,
    metric          text NOT NULL,
    value           double precision,
    threshold       double precision,
    message         text NOT NULL,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    occurrences     bigint NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_fingerprint ON alerts (fingerprint) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_status_last_seen ON alerts (status, last_seen DESC);

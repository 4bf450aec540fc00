-- 0028: priced spans stored without a tenant, found by the owner backfill (exporters/postgres/owners.py), which
-- gives them their trace's owner once it is stored. Only such spans enter the index.
CREATE INDEX IF NOT EXISTS spans_unowned ON spans (start_time) WHERE tenant_id IS NULL AND cost_usd IS NOT NULL;

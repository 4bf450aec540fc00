-- 0016 (analytics): the daily and hourly caches' fingerprints also weigh each rollup row's count by a hash of its
-- tenant (source_keys: sum(count * hashtext(tenant_id))). The owner backfill (exporters/postgres/owners.py) moves
-- a span's counts from the unowned key to its owner's; once compacted, such a move changes neither the span count
-- nor the number of rows, but it changes this sum. Days and hours cached before it (NULL) are rebuilt once.
ALTER TABLE analytics_rollup_days ADD COLUMN IF NOT EXISTS source_keys numeric;
ALTER TABLE analytics_rollup_hours ADD COLUMN IF NOT EXISTS source_keys numeric;

-- 0009: databases migrated with the first draft of 0006 (before `item_key`) get the column and its unique index;
-- on any other database this is a no-op.
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS item_key bytea;
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_item ON quarantine (signal, action, item_key);

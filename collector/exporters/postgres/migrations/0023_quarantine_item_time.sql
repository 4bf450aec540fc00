-- 0023: items refused at the door because their time lies outside [now - retention, now + allowed_clock_skew] go to
-- the quarantine with the offending timestamp (span start or end, metric point or log time), so they can be found
-- and replayed by time. NULL for repaired items and for items quarantined for their content.
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS item_time timestamptz;

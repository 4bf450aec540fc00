-- 0020: room on every rollup page for the next version of its rows.
-- Every batch updates the rollup rows of the current minute and hour (ON CONFLICT DO UPDATE). On full pages
-- each update is a non-HOT update: a new index entry in both indexes and a bloated table (measured: 8 % of
-- updates HOT at fillfactor 100, 80 % at 50; the rollup upserts ~25 % cheaper and the 1m table half the size).
-- No indexed column is ever updated, so HOT applies whenever the page has room. Applies to pages written from now
-- on.
ALTER TABLE span_rollups_1m SET (fillfactor = 50);
ALTER TABLE span_rollups_1h SET (fillfactor = 50);

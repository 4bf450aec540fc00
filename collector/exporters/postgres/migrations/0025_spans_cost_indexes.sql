-- 0025: partial indexes for the costs page's request-level figures over long windows. `spans_cost` lets the most
-- expensive calls of a month be read from the top of each daily partition's index instead of scanning every priced
-- span; `spans_unpriced` finds model calls without a cost without reading the priced ones. Only model calls enter
-- them, so ingest of other spans does not maintain them.
CREATE INDEX IF NOT EXISTS spans_cost ON spans (cost_usd) WHERE cost_usd > 0;
CREATE INDEX IF NOT EXISTS spans_unpriced ON spans (start_time) WHERE model IS NOT NULL AND cost_usd IS NULL;

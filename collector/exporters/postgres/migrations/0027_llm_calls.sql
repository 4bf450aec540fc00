-- 0027: one price per LLM call across batches and processes (exporters/postgres/calls.py). Each priced
-- gen_ai.response.id is claimed once, by the first span stored with it; a later span of the same response is stored
-- folded into it. Retention deletes claims older than the spans' retention.
CREATE TABLE IF NOT EXISTS llm_calls (
    response_id text COLLATE "C" PRIMARY KEY,
    trace_id    bytea NOT NULL,
    span_id     bytea NOT NULL,
    start_time  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_start_time ON llm_calls USING brin (start_time);

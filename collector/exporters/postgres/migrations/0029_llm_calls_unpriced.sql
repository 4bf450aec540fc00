-- 0029: spans with tokens and no cost claim their gen_ai.response.id too (exporters/postgres/calls.py), so that a
-- call seen priced by one process and unpriced by another counts its tokens once. `priced` says whether the holder
-- has a cost: a priced span of the same response takes an unpriced holder's claim over. Claims before it: priced.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS priced boolean NOT NULL DEFAULT true;

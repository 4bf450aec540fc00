"""Models the sink has seen on LLM spans (model and token counts) with no cost: what a total is missing.

A span is counted here when it has a model and input or output tokens but ``cost_usd`` is NULL: its model had
no price where it was enriched (SDK or collector). ``priced_now`` says whether the current price table (with
the user's overrides) knows the model, so an override added since shows up as such.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from collector.analytics._sql import filter_clauses
from collector.analytics.models import UnpricedModel
from collector.analytics.window import Filters, TimeWindow

__all__ = ["UnpricedModel", "folded_by_key", "folded_spans", "unpriced_models"]

_FOLDED = """
SELECT count(*)::bigint FROM spans
WHERE start_time >= %s AND start_time < %s AND attributes ? 'cost.duplicate_of'
"""


def folded_spans(conn: psycopg.Connection[Any], window: TimeWindow) -> int:
    """Spans in ``window`` folded into another span of the same LLM call (their cost is on that span)."""
    row = conn.execute(_FOLDED, (window.start, window.end)).fetchone()
    return int(row[0]) if row else 0


def folded_by_key(
    conn: psycopg.Connection[Any], window: TimeWindow, filters: Filters, column: str
) -> dict[str | None, int]:
    """Folded spans in ``window`` per value of ``column`` (a spans column from a fixed map), with ``filters``.
    Folded spans have a model and no cost: the partial index of such spans (migration 0025) finds them."""
    where: list[sql.Composable] = [
        sql.SQL("start_time >= %s AND start_time < %s AND model IS NOT NULL AND cost_usd IS NULL"),
        sql.SQL("attributes ? 'cost.duplicate_of'"),
    ]
    clauses, values = filter_clauses(filters)
    where += clauses
    params: list[Any] = [window.start, window.end, *values]
    query = sql.SQL("SELECT {key}, count(*)::bigint FROM spans WHERE {where} GROUP BY 1").format(
        key=sql.SQL(column), where=sql.SQL(" AND ").join(where)
    )
    return {key: int(n) for key, n in conn.execute(query, params).fetchall()}


_QUERY = """
SELECT coalesce(provider, '') AS provider, model, count(*)::bigint AS calls,
       coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
       min(start_time) AS first_seen, max(start_time) AS last_seen
FROM spans
WHERE start_time >= %s AND start_time < %s
  AND model IS NOT NULL AND cost_usd IS NULL
  AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
  -- a span of a call another span of its trace is priced for (processors.cost.dedup) is not missing a price
  AND NOT EXISTS (
      SELECT 1 FROM spans AS priced
      WHERE priced.trace_id = spans.trace_id AND priced.cost_usd IS NOT NULL
        AND priced.attributes ->> 'gen_ai.response.id' = spans.attributes ->> 'gen_ai.response.id'
  )
GROUP BY 1, 2
ORDER BY calls DESC, model
LIMIT %s
"""


def unpriced_models(
    conn: psycopg.Connection[Any],
    window: TimeWindow,
    priced: Callable[[str, str | None], bool] | None = None,
    limit: int = 1000,
) -> list[UnpricedModel]:
    """Spans with tokens but no cost in ``window``, by provider and model; ``priced(model, provider)`` says whether
    the current table knows the model (``priced_now`` None when not given)."""
    rows = conn.execute(_QUERY, (window.start, window.end, limit)).fetchall()
    out = []
    for provider, model, calls, n_in, n_out, first, last in rows:
        known = priced(model, provider or None) if priced is not None else None
        out.append(UnpricedModel(provider or None, model, calls, n_in, n_out, first, last, known))
    return out

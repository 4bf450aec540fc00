"""Cost totals per key that estimate the whole when spans were head-sampled: each stored span weighs its
``adjusted_count`` (1 / its sampling probability; NULL: 1). On raw spans the sums are weighted; on rollups,
``span_rollups_unsampled_1h`` (what the sampled-out spans are estimated to add, per hourly key) is added to the
rollup rows (hourly, or the daily caches). ``estimated`` says whether a sampled span contributed to a key. Unsampled
data reads exactly as before: weights of 1 multiply numerics exactly and the unsampled table has no rows for it.
(docs/schema.md, *Sampled spans*.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ._sql import Source, filter_clauses
from .window import Filters

__all__ = ["UNSAMPLED_TABLE", "estimated_costs"]

UNSAMPLED_TABLE = "span_rollups_unsampled_1h"
_WEIGHT = "coalesce(adjusted_count, 1)"
_RAW_AGG = sql.SQL(
    f"sum({_WEIGHT})::float8 AS calls,"
    f" coalesce(sum({_WEIGHT}) FILTER (WHERE status_code = 2), 0)::float8 AS errors,"
    f" coalesce(sum(input_tokens * {_WEIGHT}), 0)::float8 AS itok,"
    f" coalesce(sum(output_tokens * {_WEIGHT}), 0)::float8 AS otok,"
    f" coalesce(sum(cost_usd * {_WEIGHT}::numeric), 0)::float8 AS cost,"
    " coalesce(bool_or(adjusted_count > 1), false) AS estimated,"
    f" coalesce(sum({_WEIGHT}) FILTER (WHERE parent_span_id IS NULL OR kind = 2), 0)::float8 AS requests,"
    f" coalesce(sum({_WEIGHT}) FILTER (WHERE parent_span_id IS NULL), 0)::float8 AS roots, true AS roots_known"
)
# Rollup rows written before migration 0030 hold NULL roots (not counted): ``roots_known`` says none was read.
_ROLLUP_PART = sql.SQL(
    "SELECT {keys}, count AS n, errors AS e, input_tokens AS i, output_tokens AS o, cost_usd AS c, 0::float8 AS u,"
    " requests AS q, roots AS r FROM {table} WHERE {where}"
)
_UNSAMPLED_PART = sql.SQL(
    "SELECT {keys}, count AS n, errors AS e, input_tokens AS i, output_tokens AS o, cost_usd AS c, count AS u,"
    " requests AS q, roots AS r FROM {table} WHERE {where}"
)
_ROLLUP_AGG = sql.SQL(
    "sum(n)::float8 AS calls, sum(e)::float8 AS errors, coalesce(sum(i), 0)::float8 AS itok,"
    " coalesce(sum(o), 0)::float8 AS otok, coalesce(sum(c), 0)::float8 AS cost, sum(u) > 0 AS estimated,"
    " coalesce(sum(q), 0)::float8 AS requests, coalesce(sum(r), 0)::float8 AS roots,"
    " bool_and(r IS NOT NULL) AS roots_known"
)


def _unsampled_where(src: Source, filters: Filters) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("bucket_start >= %s AND bucket_start < %s")]
    params: list[Any] = [src.window.start, src.window.end]
    clauses, values = filter_clauses(filters)
    return sql.SQL(" AND ").join(parts + clauses), params + values


def estimated_costs(
    conn: psycopg.Connection[Any],
    src: Source,
    filters: Filters,
    keys: Sequence[tuple[str, str]],
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Per key (``keys``: (alias, SQL expression) from fixed maps): calls, errors, itok, otok, cost, requests (root or
    SERVER spans), roots (root spans: whole traces) (estimates of the whole; floats), estimated and roots_known
    (False: rollup rows from before migration 0030 were read, whose roots were not counted), ordered by cost then
    calls, descending."""
    select = sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(a)) for a, e in keys)
    aliases = sql.SQL(", ").join(sql.Identifier(a) for a, _ in keys)
    group = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(keys) + 1))
    order = sql.SQL(", ").join([sql.SQL("cost DESC, calls DESC"), aliases])
    page, page_params = (sql.SQL(" LIMIT %s OFFSET %s"), [limit, offset]) if limit is not None else (sql.SQL(""), [])
    if not src.rollup:
        query = sql.SQL("SELECT {keys}, {agg} FROM {table} WHERE {where} GROUP BY {group} ORDER BY {order}").format(
            keys=select, agg=_RAW_AGG, table=src.ident, where=src.where, group=group, order=order
        )
        params = [*src.params, *page_params]
    else:
        parts = [_ROLLUP_PART.format(keys=select, table=p.ident, where=p.where) for p in src.parts]
        where, unsampled_params = _unsampled_where(src, filters)
        parts.append(_UNSAMPLED_PART.format(keys=select, table=sql.Identifier(UNSAMPLED_TABLE), where=where))
        # A key whose rows sum to no span (counts moved to another key: exporters/postgres/owners.py) is no key.
        query = sql.SQL(
            "SELECT {aliases}, {agg} FROM ({rows}) AS r GROUP BY {group} HAVING sum(n) <> 0 ORDER BY {order}"
        ).format(aliases=aliases, agg=_ROLLUP_AGG, rows=sql.SQL(" UNION ALL ").join(parts), group=group, order=order)
        params = [*(v for p in src.parts for v in p.params), *unsampled_params, *page_params]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.Composed([query, page]), params)
        return cur.fetchall()

"""Where an analytics query reads from (raw spans, hourly rollups, the daily and hourly caches) and the per-key
aggregation that every summary query shares: totals, and latency percentiles from raw durations or from merged
rollup histograms."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from . import _histogram, daily
from ._sql import ROLLUP_TABLE, Source, source_for
from .window import Filters, TimeWindow

__all__ = ["DEFAULT_LIMIT", "DEFAULT_SLOW_MS", "DEFAULT_VERY_SLOW_MS", "MAX_LIMIT", "QueryBase", "Thresholds"]

DEFAULT_SLOW_MS = 5_000.0
DEFAULT_VERY_SLOW_MS = 30_000.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
_LOGGER = logging.getLogger("otel_metrics.analytics")

_RAW_AGG = sql.SQL(
    "count(*)::bigint AS calls, count(*) FILTER (WHERE status_code = 2)::bigint AS errors,"
    " coalesce(sum(duration_ms), 0)::float8 AS dsum, min(duration_ms) AS dmin, max(duration_ms) AS dmax,"
    " coalesce(sum(input_tokens), 0)::bigint AS itok, coalesce(sum(output_tokens), 0)::bigint AS otok,"
    " coalesce(sum(cost_usd), 0)::float8 AS cost, coalesce(sum(quality_score), 0)::float8 AS qsum,"
    " count(quality_score)::bigint AS qcount,"
    " count(*) FILTER (WHERE parent_span_id IS NULL OR kind = 2)::bigint AS requests,"  # root or SERVER: a request
    " count(*) FILTER (WHERE parent_span_id IS NULL)::bigint AS roots"  # a root: a whole trace, whatever it entered
)
_ROLLUP_COLUMNS = sql.SQL(
    "count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens, cost_usd,"
    " quality_sum, quality_count, requests, roots"
)
_ROLLUP_AGG = sql.SQL(
    "sum(count)::bigint AS calls, sum(errors)::bigint AS errors, sum(duration_sum_ms)::float8 AS dsum,"
    " min(duration_min_ms) AS dmin, max(duration_max_ms) AS dmax, sum(input_tokens)::bigint AS itok,"
    " sum(output_tokens)::bigint AS otok, sum(cost_usd)::float8 AS cost, sum(quality_sum)::float8 AS qsum,"
    " sum(quality_count)::bigint AS qcount, sum(requests)::bigint AS requests,"
    # Unknown (NULL) when a row written before migration 0030 and not yet counted again (the sink's root backfill)
    # was read.
    " (CASE WHEN count(roots) = count(*) THEN sum(roots) END)::bigint AS roots"
)


@dataclass(frozen=True)
class Thresholds:
    slow_ms: float = DEFAULT_SLOW_MS
    very_slow_ms: float = DEFAULT_VERY_SLOW_MS


def _clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise ValueError(f"limit: must be >= 1, got {limit}")
    return min(limit, MAX_LIMIT)


def _rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


class QueryBase:
    """One psycopg connection (autocommit; the session time zone is set to UTC), where each query reads from, and
    the per-key aggregation every summary query shares."""

    def __init__(
        self, conn: psycopg.Connection[Any], thresholds: Thresholds | None = None, *, exact: bool = False
    ) -> None:
        self.conn = conn
        self.thresholds = thresholds or Thresholds()
        # exact: always read raw spans (exact percentiles, slower over long windows).
        self.exact = exact
        conn.execute("SET TIME ZONE 'UTC'")

    # -- plumbing ------------------------------------------------------------------------------------------
    def _rows(self, query: sql.SQL | sql.Composed, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _source(
        self,
        window: TimeWindow,
        filters: Filters,
        *,
        allow_rollup: bool = True,
        sub_day: bool = False,
        dimensions: bool = True,
        hourly: str | None = None,
    ) -> Source:
        """The source for a query; long rollup queries that need no sub-day resolution read whole days from the
        daily cache (refreshed first) and only the edges from the hourly rollups (or, per operation, from the
        hourly cache for hours of complete days). ``hourly`` (hour-resolution queries that neither group nor filter
        by the rollup dimensions): ``"ops"`` reads complete days' hours from the per-operation hourly cache,
        ``"any"`` also from the per-hour cache when nothing is filtered."""
        allow = allow_rollup and not self.exact
        src = source_for(window, filters, allow_rollup=allow)
        if not src.rollup or (sub_day and hourly is None):
            return src
        days = daily.complete_days(src.window.start, src.window.end)
        touched = daily.touched_days(src.window.start, src.window.end)
        # "is None": an empty value is still a filter (tenant_id = ''), which the per-operation caches cannot apply.
        per_operation = not dimensions and all(v is None for v in (filters.tenant, filters.agent, filters.model))
        if touched is None or (days is None and not per_operation):
            return src
        running = daily.running_hours(src.window.start, src.window.end) if per_operation else None
        try:
            refresh_days = touched if per_operation or days is None else days
            daily.refresh(self.conn, *refresh_days)
            if running is not None:
                daily.refresh_hours(self.conn, *running)
        except psycopg.Error as exc:  # e.g. a read-only role: the hourly rollups answer alone, just slower
            _LOGGER.warning("analytics: daily rollup cache unavailable (%s); reading hourly rollups", exc)
            return src
        if not per_operation:
            if sub_day:
                return src
            return source_for(window, filters, allow_rollup=allow, daily=days)
        # Complete days, then the ended hours of the running day, are cached.
        cached_until = running[1] if running is not None and running[0] <= touched[1] else touched[1]
        if sub_day or days is None:
            table = daily.HOURLY_ALL_TABLE if hourly == "any" and not filters.items() else daily.HOURLY_OPS_TABLE
            return source_for(window, filters, allow_rollup=allow, cached_until=cached_until, hourly_table=table)
        return source_for(
            window, filters, allow_rollup=allow, daily=days, per_operation=True, cached_until=cached_until
        )

    def _aggregate(
        self,
        src: Source,
        keys: Sequence[tuple[str, str]],
        *,
        latency: bool,
        limit: int | None = None,
        offset: int = 0,
        order: str = "calls DESC",
        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
        histograms: bool = False,
    ) -> list[dict[str, Any]]:
        """Per-key totals (calls, errors, durations, tokens, cost, quality) and, with ``latency``, the quantiles
        (``pct``), slow/very slow counts and (rollups only) the sums of bucket values and their squares.
        ``keys`` are (alias, SQL expression over the source's columns) from fixed maps. ``histograms`` (rollups
        only) also keeps each row's merged latency histogram as ``hist`` (bucket ids, counts), to merge further."""
        shape = _Shape(keys, order, limit, offset)
        qs = [float(q) for q in quantiles]
        if not src.rollup:
            return self._aggregate_raw(src, shape, latency, qs)
        rows = self._rows(*shape.over(_rollup_scalars(src, shape)))
        if latency:
            self._attach_histograms(src, shape, rows, qs, histograms)
        return rows

    def _aggregate_raw(self, src: Source, shape: _Shape, latency: bool, qs: list[float]) -> list[dict[str, Any]]:
        extra = sql.SQL("")
        params: list[Any] = []
        if latency:
            extra = sql.SQL(
                ", percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY duration_ms) AS pct,"
                " count(*) FILTER (WHERE duration_ms > %s)::bigint AS slow,"
                " count(*) FILTER (WHERE duration_ms > %s)::bigint AS very_slow"
            )
            params = [qs, self.thresholds.slow_ms, self.thresholds.very_slow_ms]
        query = sql.SQL(
            "SELECT {keys}, {agg}{extra} FROM {table} WHERE {where} GROUP BY {group} ORDER BY {order}"
        ).format(
            keys=shape.select,
            agg=_RAW_AGG,
            extra=extra,
            table=src.ident,
            where=src.where,
            group=shape.group,
            order=shape.order_by,
        )
        return self._rows(sql.Composed([query, shape.page]), [*params, *src.params, *shape.page_params])

    def _attach_histograms(
        self, src: Source, shape: _Shape, rows: list[dict[str, Any]], qs: list[float], keep: bool = False
    ) -> None:
        """Latency of rollup rows. Cached parts hand over their rows' sorted arrays as they are; span_rollups_1h
        parts (jsonb) are merged per key in SQL first. Python merges per key (a key read from one row needs no
        merge) and computes percentiles, slow counts and moments in one pass (_histogram): far cheaper than
        re-aggregating every (key, bucket) pair in SQL."""
        group_k = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(shape.keys) + 2))
        hist_parts = [
            sql.SQL(
                "SELECT {aliases}, array_agg(k ORDER BY k) AS hk, array_agg(n ORDER BY k) AS hn FROM"
                " (SELECT {keys}, e.hk::integer AS k, sum(e.hv::bigint)::bigint AS n FROM {table} AS r"
                "  CROSS JOIN LATERAL jsonb_each_text(r.latency_hist) AS e(hk, hv) WHERE {where}"
                "  GROUP BY {group_k}) AS b GROUP BY {group}"
                if part.table == ROLLUP_TABLE
                else "SELECT {keys}, hist_keys AS hk, hist_counts AS hn FROM {table} WHERE {where}"
            ).format(
                aliases=shape.aliases,
                keys=shape.select,
                table=part.ident,
                where=part.where,
                group_k=group_k,
                group=shape.group,
            )
            for part in src.parts
        ]
        names = shape.names
        wanted = {tuple(r[a] for a in names) for r in rows}
        histograms: dict[tuple[Any, ...], list[tuple[list[int], list[int]]]] = {}
        with self.conn.cursor(binary=True) as cur:
            cur.execute(sql.SQL(" UNION ALL ").join(hist_parts), [p for part in src.parts for p in part.params])
            width = len(names)
            for h in cur:
                key = tuple(h[:width])
                if key in wanted:
                    histograms.setdefault(key, []).append((h[width], h[width + 1]))
        for r in rows:
            hk, hn = _histogram.merge(histograms.get(tuple(r[a] for a in names), []))
            summary = _histogram.summarize(hk, hn, qs, self.thresholds.slow_ms, self.thresholds.very_slow_ms)
            r["pct"] = summary.pct
            r["slow"] = summary.slow
            r["very_slow"] = summary.very_slow
            r["vsum"] = summary.vsum
            r["vsq"] = summary.vsq
            if keep:
                r["hist"] = (hk, hn)


@dataclass(frozen=True)
class _Shape:
    """The key columns, order and page of one aggregation."""

    keys: Sequence[tuple[str, str]]
    order: str
    limit: int | None
    offset: int

    @property
    def names(self) -> list[str]:
        return [a for a, _ in self.keys]

    @property
    def aliases(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(a) for a in self.names)

    @property
    def select(self) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(alias)) for alias, expr in self.keys
        )

    @property
    def group(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(self.keys) + 1))

    @property
    def order_by(self) -> sql.Composable:
        return sql.SQL(", ").join([sql.SQL(self.order), *(sql.Identifier(a) for a in self.names)])

    @property
    def page(self) -> sql.Composable:
        return sql.SQL(" LIMIT %s OFFSET %s") if self.limit is not None else sql.SQL("")

    @property
    def page_params(self) -> list[Any]:
        return [self.limit, self.offset] if self.limit is not None else []

    def over(self, rows: tuple[sql.Composable, list[Any]]) -> tuple[sql.Composed, list[Any]]:
        """Totals per key over rollup rows (hourly and daily rows share the key columns), ordered and paged. A key
        whose rows sum to no span (its counts moved to another key: exporters/postgres/owners.py) is no key."""
        rows_sql, params = rows
        query = sql.SQL(
            "SELECT {aliases}, {agg} FROM ({rows}) AS r GROUP BY {group} HAVING sum(count) <> 0 ORDER BY {order}"
        ).format(aliases=self.aliases, agg=_ROLLUP_AGG, rows=rows_sql, group=self.group, order=self.order_by)
        return sql.Composed([query, self.page]), [*params, *self.page_params]


def _rollup_scalars(src: Source, shape: _Shape) -> tuple[sql.Composable, list[Any]]:
    parts = [
        sql.SQL("SELECT {keys}, {cols} FROM {table} WHERE {where}").format(
            keys=shape.select, cols=_ROLLUP_COLUMNS, table=part.ident, where=part.where
        )
        for part in src.parts
    ]
    return sql.SQL(" UNION ALL ").join(parts), [p for part in src.parts for p in part.params]

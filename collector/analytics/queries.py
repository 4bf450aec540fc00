"""The analytics query layer: every question from docs/analytics.md as one method returning typed results.

Windows longer than a day read ``span_rollups_1h`` (percentiles from merged latency histograms, < 1 % error);
shorter windows, and questions the rollups cannot answer (users, roles, providers, correlation ids, outliers,
numeric attributes), read raw ``spans`` exactly. Every statement is parameterised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from . import _histogram, daily
from . import statistics as stats
from ._sql import ROLLUP_TABLE, Source, granularity_literal, source_for
from .models import (
    AgentStats,
    CorrelationCost,
    CostProjection,
    CostRow,
    OperationPerformance,
    Outlier,
    PercentileSummary,
    TimeBucket,
    Trend,
    UsagePoint,
    UserActivity,
)
from .window import NO_FILTERS, Filters, TimeWindow

__all__ = [
    "COST_KEYS",
    "DEFAULT_LIMIT",
    "DEFAULT_SLOW_MS",
    "DEFAULT_VERY_SLOW_MS",
    "PERCENTILE_FIELDS",
    "TREND_METRICS",
    "Analytics",
    "Thresholds",
]

DEFAULT_SLOW_MS = 5_000.0
DEFAULT_VERY_SLOW_MS = 30_000.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_Z_THRESHOLD = 3.0
# A trend needs at least this many points; a slope with a two-sided p-value at or above SIGNIFICANCE is "stable".
MIN_TREND_POINTS = 3
SIGNIFICANCE = 0.05
BURN_WINDOW_DAYS = 7
_NONE = "(none)"
_LOGGER = logging.getLogger("otel_metrics.analytics")

# Cost breakdown keys: column in spans, and whether span_rollups_1h carries it.
COST_KEYS: dict[str, tuple[str, bool]] = {
    "model": ("model", True),
    "tenant": ("tenant_id", True),
    "agent": ("agent_name", True),
    "operation": ("operation", True),
    "service": ("service_name", True),
    "provider": ("provider", False),
    "user": ("user_id", False),
    "correlation": ("correlation_id", False),
}
PERCENTILE_FIELDS = ("duration", "cost", "tokens", "quality")
# metric -> True when higher values are better
TREND_METRICS: dict[str, bool] = {
    "calls": True,
    "success_rate": True,
    "error_rate": False,
    "avg_ms": False,
    "p95_ms": False,
    "cost_usd": False,
    "quality_avg": True,
}
_STEP_SECONDS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}

_RAW_AGG = sql.SQL(
    "count(*)::bigint AS calls, count(*) FILTER (WHERE status_code = 2)::bigint AS errors,"
    " coalesce(sum(duration_ms), 0)::float8 AS dsum, min(duration_ms) AS dmin, max(duration_ms) AS dmax,"
    " coalesce(sum(input_tokens), 0)::bigint AS itok, coalesce(sum(output_tokens), 0)::bigint AS otok,"
    " coalesce(sum(cost_usd), 0)::float8 AS cost, coalesce(sum(quality_score), 0)::float8 AS qsum,"
    " count(quality_score)::bigint AS qcount"
)
_ROLLUP_COLUMNS = sql.SQL(
    "count, errors, duration_sum_ms, duration_min_ms, duration_max_ms, input_tokens, output_tokens, cost_usd,"
    " quality_sum, quality_count"
)
_ROLLUP_AGG = sql.SQL(
    "sum(count)::bigint AS calls, sum(errors)::bigint AS errors, sum(duration_sum_ms)::float8 AS dsum,"
    " min(duration_min_ms) AS dmin, max(duration_max_ms) AS dmax, sum(input_tokens)::bigint AS itok,"
    " sum(output_tokens)::bigint AS otok, sum(cost_usd)::float8 AS cost, sum(quality_sum)::float8 AS qsum,"
    " sum(quality_count)::bigint AS qcount"
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


def _hex(value: bytes | None) -> str:
    return bytes(value).hex() if value is not None else ""


class Analytics:
    """Queries over one psycopg connection (autocommit; the session time zone is set to UTC)."""

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
        per_operation = not dimensions and not (filters.tenant or filters.agent or filters.model)
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
    ) -> list[dict[str, Any]]:
        """Per-key totals (calls, errors, durations, tokens, cost, quality) and, with ``latency``, the quantiles
        (``pct``), slow/very slow counts and (rollups only) the sums of bucket values and their squares.
        ``keys`` are (alias, SQL expression over the source's columns) from fixed maps."""
        aliases = [sql.Identifier(a) for a, _ in keys]
        key_select = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(alias)) for alias, expr in keys
        )
        group = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(keys) + 1))
        order_by = sql.SQL(", ").join([sql.SQL(order), *aliases])
        page = sql.SQL(" LIMIT %s OFFSET %s") if limit is not None else sql.SQL("")
        page_params: list[Any] = [limit, offset] if limit is not None else []
        slow = [self.thresholds.slow_ms, self.thresholds.very_slow_ms]
        qs = [float(q) for q in quantiles]
        if not src.rollup:
            extra = sql.SQL("")
            params: list[Any] = []
            if latency:
                extra = sql.SQL(
                    ", percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY duration_ms) AS pct,"
                    " count(*) FILTER (WHERE duration_ms > %s)::bigint AS slow,"
                    " count(*) FILTER (WHERE duration_ms > %s)::bigint AS very_slow"
                )
                params = [qs, *slow]
            template = sql.SQL(
                "SELECT {keys}, {agg}{extra} FROM {table} WHERE {where} GROUP BY {group} ORDER BY {order}"
            )
            query = template.format(
                keys=key_select,
                agg=_RAW_AGG,
                extra=extra,
                table=src.ident,
                where=src.where,
                group=group,
                order=order_by,
            )
            return self._rows(sql.Composed([query, page]), [*params, *src.params, *page_params])
        # Rollups: scalar columns from every part (hourly and daily rows share the key columns).
        scalar_parts = [
            sql.SQL("SELECT {keys}, {cols} FROM {table} WHERE {where}").format(
                keys=key_select, cols=_ROLLUP_COLUMNS, table=part.ident, where=part.where
            )
            for part in src.parts
        ]
        scalar_params = [p for part in src.parts for p in part.params]
        rows_sql = sql.SQL(" UNION ALL ").join(scalar_parts)
        if not latency:
            query = sql.SQL("SELECT {aliases}, {agg} FROM ({rows}) AS r GROUP BY {group} ORDER BY {order}").format(
                aliases=sql.SQL(", ").join(aliases), agg=_ROLLUP_AGG, rows=rows_sql, group=group, order=order_by
            )
            return self._rows(sql.Composed([query, page]), [*scalar_params, *page_params])
        # Histograms: cached parts hand over their rows' sorted arrays as they are; span_rollups_1h parts (jsonb)
        # are merged per key in SQL first. Python merges per key (a key read from one row needs no merge) and
        # computes percentiles, slow counts and moments in one pass (_histogram): far cheaper than re-aggregating
        # every (key, bucket) pair in SQL.
        group_k = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(keys) + 2))
        hist_parts = [
            sql.SQL(
                "SELECT {aliases}, array_agg(k ORDER BY k) AS hk, array_agg(n ORDER BY k) AS hn FROM"
                " (SELECT {keys}, e.hk::integer AS k, sum(e.hv::bigint)::bigint AS n FROM {table} AS r"
                "  CROSS JOIN LATERAL jsonb_each_text(r.latency_hist) AS e(hk, hv) WHERE {where}"
                "  GROUP BY {group_k}) AS b GROUP BY {group}"
                if part.table == ROLLUP_TABLE
                else "SELECT {keys}, hist_keys AS hk, hist_counts AS hn FROM {table} WHERE {where}"
            ).format(
                aliases=sql.SQL(", ").join(aliases),
                keys=key_select,
                table=part.ident,
                where=part.where,
                group_k=group_k,
                group=group,
            )
            for part in src.parts
        ]
        query = sql.SQL("SELECT {aliases}, {agg} FROM ({rows}) AS r GROUP BY {group} ORDER BY {order}").format(
            aliases=sql.SQL(", ").join(aliases), agg=_ROLLUP_AGG, rows=rows_sql, group=group, order=order_by
        )
        rows = self._rows(sql.Composed([query, page]), [*scalar_params, *page_params])
        names = [a for a, _ in keys]
        wanted = {tuple(r[a] for a in names) for r in rows}
        histograms: dict[tuple[Any, ...], list[tuple[list[int], list[int]]]] = {}
        with self.conn.cursor(binary=True) as cur:
            cur.execute(sql.SQL(" UNION ALL ").join(hist_parts), scalar_params)
            width = len(names)
            for h in cur:
                key = tuple(h[:width])
                if key in wanted:
                    histograms.setdefault(key, []).append((h[width], h[width + 1]))
        slow_ms, very_slow_ms = slow
        for r in rows:
            hk, hn = _histogram.merge(histograms.get(tuple(r[a] for a in names), []))
            summary = _histogram.summarize(hk, hn, qs, slow_ms, very_slow_ms)
            r["pct"] = summary.pct
            r["slow"] = summary.slow
            r["very_slow"] = summary.very_slow
            r["vsum"] = summary.vsum
            r["vsq"] = summary.vsq
        return rows

    # -- catalogue -----------------------------------------------------------------------------------------
    def services(self) -> list[str]:
        """Every service the sink has seen, from span_rollups_1h (written with every span batch, kept longer than
        raw spans). A loose index scan over (service_name, operation, bucket_start): one probe per service."""
        rows = self.conn.execute(
            "WITH RECURSIVE s(v) AS (SELECT min(service_name) FROM span_rollups_1h"
            " UNION ALL SELECT (SELECT min(service_name) FROM span_rollups_1h WHERE service_name > s.v)"
            " FROM s WHERE s.v IS NOT NULL) SELECT v FROM s WHERE v IS NOT NULL"
        ).fetchall()
        return [r[0] for r in rows]

    def operations(self, service: str | None = None) -> list[str]:
        """Operations of one service (loose index scan), or of all services."""
        if service is None:
            rows = self.conn.execute("SELECT DISTINCT operation FROM span_rollups_1h ORDER BY 1").fetchall()
            return [r[0] for r in rows]
        rows = self.conn.execute(
            "WITH RECURSIVE o(v) AS (SELECT min(operation) FROM span_rollups_1h WHERE service_name = %(s)s"
            " UNION ALL SELECT (SELECT min(operation) FROM span_rollups_1h WHERE service_name = %(s)s"
            " AND operation > o.v) FROM o WHERE o.v IS NOT NULL) SELECT v FROM o WHERE v IS NOT NULL",
            {"s": service},
        ).fetchall()
        return [r[0] for r in rows]

    # -- performance ---------------------------------------------------------------------------------------
    def performance(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        *,
        group_by: str = "operation",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[OperationPerformance]:
        """Per (service, operation), or per service (``group_by="service"``, operation ``*``)."""
        if group_by not in ("operation", "service"):
            raise ValueError(f"group_by: expected 'operation' or 'service', got {group_by!r}")
        src = self._source(window, filters, dimensions=False)
        keys = [("service", "service_name"), ("operation", "operation" if group_by == "operation" else "'*'")]
        rows = self._aggregate(src, keys, latency=True, limit=_clamp_limit(limit), offset=offset)
        out = []
        for r in rows:
            pct = r["pct"] or [None, None, None]
            calls = int(r["calls"])
            errors = int(r["errors"])
            out.append(
                OperationPerformance(
                    service=r["service"],
                    operation=r["operation"],
                    calls=calls,
                    errors=errors,
                    success_rate=_rate(calls - errors, calls),
                    error_rate=_rate(errors, calls),
                    avg_ms=_rate(r["dsum"], calls),
                    p50_ms=pct[0],
                    p95_ms=pct[1],
                    p99_ms=pct[2],
                    max_ms=float(r["dmax"] or 0.0),
                    slow=int(r["slow"]),
                    very_slow=int(r["very_slow"]),
                    exact=not src.rollup,
                )
            )
        return out

    # -- time series ---------------------------------------------------------------------------------------
    def timeseries(
        self, window: TimeWindow, filters: Filters = NO_FILTERS, granularity: str = "hour"
    ) -> list[TimeBucket]:
        src = self._source(window, filters, sub_day=granularity == "hour", dimensions=False, hourly="any")
        trunc = sql.SQL("date_trunc({}, {})").format(granularity_literal(granularity), src.time).as_string(None)
        rows = self._aggregate(src, [("bucket", trunc)], latency=True, order="1")
        out = []
        for r in rows:
            calls = int(r["calls"])
            errors = int(r["errors"])
            out.append(
                TimeBucket(
                    bucket=r["bucket"],
                    operations=calls,
                    successes=calls - errors,
                    failures=errors,
                    success_rate=_rate(calls - errors, calls),
                    avg_ms=_rate(r["dsum"], calls),
                    p95_ms=(r["pct"] or [None, None, None])[1],
                    input_tokens=int(r["itok"]),
                    output_tokens=int(r["otok"]),
                    cost_usd=float(r["cost"]),
                    quality_avg=r["qsum"] / r["qcount"] if r["qcount"] else None,
                )
            )
        return out

    # -- agents, roles, users ------------------------------------------------------------------------------
    def agents(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        *,
        by: str = "agent",
        budgets: dict[str, tuple[float, float]] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[AgentStats]:
        """Per agent (``gen_ai.agent.name``) or per role (``agent.role``). ``budgets`` maps an agent to
        (allocated, spent) in its current budget period. Quality median/min/max need raw spans: on rollups only
        the average is known and the others are None."""
        if by not in ("agent", "role"):
            raise ValueError(f"by: expected 'agent' or 'role', got {by!r}")
        column = "agent_name" if by == "agent" else "agent_role"
        src = self._source(window, filters, allow_rollup=by == "agent")
        rows = [
            r
            for r in self._aggregate(src, [("key", column)], latency=True, limit=_clamp_limit(limit), offset=offset)
            if r["key"]
        ]
        quality: dict[str, dict[str, Any]] = {}
        if not src.rollup and rows:
            q = sql.SQL(
                "SELECT {col} AS key, percentile_cont(0.5) WITHIN GROUP (ORDER BY quality_score) AS median,"
                " min(quality_score) AS min, max(quality_score) AS max FROM spans"
                " WHERE {where} AND quality_score IS NOT NULL GROUP BY 1"
            ).format(col=sql.Identifier(column), where=src.where)
            quality = {r["key"]: r for r in self._rows(q, src.params)}
        out = []
        for r in rows:
            calls = int(r["calls"])
            errors = int(r["errors"])
            pct = r["pct"] or [None, None, None]
            qrow = quality.get(r["key"], {})
            allocated, spent = (budgets or {}).get(r["key"], (None, None))
            out.append(
                AgentStats(
                    agent=r["key"],
                    tasks=calls,
                    successes=calls - errors,
                    success_rate=_rate(calls - errors, calls),
                    avg_ms=_rate(r["dsum"], calls),
                    median_ms=pct[0],
                    p95_ms=pct[1],
                    input_tokens=int(r["itok"]),
                    output_tokens=int(r["otok"]),
                    cost_usd=float(r["cost"]),
                    quality_avg=r["qsum"] / r["qcount"] if r["qcount"] else None,
                    quality_median=qrow.get("median"),
                    quality_min=qrow.get("min"),
                    quality_max=qrow.get("max"),
                    budget_usd=allocated,
                    budget_remaining_usd=None if allocated is None or spent is None else allocated - spent,
                    budget_utilization=None if not allocated or spent is None else spent / allocated,
                )
            )
        return out

    def users(
        self, window: TimeWindow, filters: Filters = NO_FILTERS, *, limit: int | None = None, offset: int = 0
    ) -> list[UserActivity]:
        src = source_for(window, filters, allow_rollup=False)
        q = sql.SQL(
            "SELECT user_id, count(*)::bigint AS requests, count(*) FILTER (WHERE status_code <> 2)::bigint AS ok,"
            " avg(duration_ms) AS avg_ms, min(start_time) AS first_seen, max(start_time) AS last_seen"
            " FROM spans WHERE {where} AND user_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s OFFSET %s"
        ).format(where=src.where)
        return [
            UserActivity(
                r["user_id"], int(r["requests"]), int(r["ok"]), float(r["avg_ms"]), r["first_seen"], r["last_seen"]
            )
            for r in self._rows(q, [*src.params, _clamp_limit(limit), offset])
        ]

    def active_users(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> int:
        src = source_for(window, filters, allow_rollup=False)
        q = sql.SQL("SELECT count(DISTINCT user_id) FROM spans WHERE {where}").format(where=src.where)
        row = self.conn.execute(q, src.params).fetchone()
        return int(row[0]) if row else 0

    def top_operations(self, window: TimeWindow, filters: Filters = NO_FILTERS, limit: int = 10) -> list[UsagePoint]:
        src = self._source(window, filters, dimensions=False)
        rows = self._aggregate(src, [("key", "operation")], latency=False, limit=_clamp_limit(limit))
        return [UsagePoint(r["key"], int(r["calls"])) for r in rows]

    def hourly_pattern(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> list[UsagePoint]:
        """Calls per hour of day (UTC), all 24 hours."""
        src = self._source(window, filters, sub_day=True)
        hour = sql.SQL("extract(hour FROM {})::int").format(src.time).as_string(None)
        counts = {int(r["key"]): int(r["calls"]) for r in self._aggregate(src, [("key", hour)], latency=False)}
        return [UsagePoint(f"{h:02d}", counts.get(h, 0)) for h in range(24)]

    # -- distributions -------------------------------------------------------------------------------------
    def percentiles(
        self, window: TimeWindow, filters: Filters = NO_FILTERS, field: str = "duration"
    ) -> PercentileSummary:
        """p50/p75/p90/p95/p99, mean, median, std (population), min, max and count of ``field``: duration (ms),
        cost (USD), tokens (input + output), quality, or ``attribute:<name>`` (a numeric span attribute)."""
        if field == "duration":
            src = self._source(window, filters, dimensions=False)
            if src.rollup:
                return self._duration_percentiles_from_rollups(src)
        expr: sql.Composable
        extra: list[Any] = []
        if field == "duration":
            expr = sql.SQL("duration_ms")
        elif field == "cost":
            expr = sql.SQL("cost_usd::float8")
        elif field == "tokens":
            expr = sql.SQL("(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))::float8")
        elif field == "quality":
            expr = sql.SQL("quality_score")
        elif field.startswith("attribute:") and len(field) > len("attribute:"):
            expr = sql.SQL("CASE WHEN jsonb_typeof(attributes -> %s) = 'number' THEN (attributes ->> %s)::float8 END")
            extra = [field[len("attribute:") :]] * 2
        else:
            raise ValueError(
                f"field: expected one of {', '.join(PERCENTILE_FIELDS)} or attribute:<name>, got {field!r}"
            )
        src = source_for(window, filters, allow_rollup=False)
        q = sql.SQL(
            "SELECT count(v)::bigint AS n, avg(v) AS mean, stddev_pop(v) AS std, min(v) AS min, max(v) AS max,"
            " percentile_cont(ARRAY[0.5, 0.75, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY v) AS pct"
            " FROM (SELECT {expr} AS v FROM spans WHERE {where}) AS x WHERE v IS NOT NULL"
        ).format(expr=expr, where=src.where)
        r = self._rows(q, [*extra, *src.params])[0]
        pct = r["pct"] or [None] * 5
        return PercentileSummary(
            field=field,
            count=int(r["n"]),
            mean=r["mean"],
            median=pct[0],
            std=r["std"],
            min=r["min"],
            max=r["max"],
            p50=pct[0],
            p75=pct[1],
            p90=pct[2],
            p95=pct[3],
            p99=pct[4],
            exact=True,
        )

    def _duration_percentiles_from_rollups(self, src: Source) -> PercentileSummary:
        rows = self._aggregate(src, [("all", "'all'")], latency=True, quantiles=(0.5, 0.75, 0.9, 0.95, 0.99))
        if not rows or not rows[0]["calls"]:
            return PercentileSummary("duration", 0, None, None, None, None, None, None, None, None, None, None, False)
        r = rows[0]
        n = int(r["calls"])
        pct = r["pct"]
        # From bucket representative values: the spread is known to the histogram's resolution (< 1 %).
        m = r["vsum"] / n
        std = math.sqrt(max(r["vsq"] / n - m * m, 0.0))
        return PercentileSummary(
            field="duration",
            count=n,
            mean=r["dsum"] / n,
            median=pct[0],
            std=std,
            min=r["dmin"],
            max=r["dmax"],
            p50=pct[0],
            p75=pct[1],
            p90=pct[2],
            p95=pct[3],
            p99=pct[4],
            exact=False,
        )

    # -- trends --------------------------------------------------------------------------------------------
    def trends(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        granularity: str = "day",
        metrics: Sequence[str] = tuple(TREND_METRICS),
    ) -> list[Trend]:
        """Least-squares trend of each metric over the window's time buckets (x = steps since the window start;
        buckets without data are absent, not zero)."""
        unknown = [m for m in metrics if m not in TREND_METRICS]
        if unknown:
            raise ValueError(f"metrics: unknown {unknown}; expected some of {', '.join(TREND_METRICS)}")
        series = self.timeseries(window, filters, granularity)
        return trends_of(series, window.start, granularity, metrics)

    # -- outliers ------------------------------------------------------------------------------------------
    def outliers(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        *,
        metric: str = "duration",
        threshold: float = DEFAULT_Z_THRESHOLD,
        limit: int | None = None,
    ) -> list[Outlier]:
        """Spans whose value is at least ``threshold`` population standard deviations from the mean of their
        (service, operation) in the window."""
        column = {"duration": "duration_ms", "cost": "cost_usd::float8"}.get(metric)
        if column is None:
            raise ValueError(f"metric: expected 'duration' or 'cost', got {metric!r}")
        if threshold <= 0:
            raise ValueError(f"threshold: must be > 0, got {threshold:g}")
        src = source_for(window, filters, allow_rollup=False)
        q = sql.SQL(
            "SELECT * FROM (SELECT service_name, operation, trace_id, span_id, correlation_id, start_time, v,"
            "   avg(v) OVER w AS m, stddev_pop(v) OVER w AS s"
            "   FROM (SELECT service_name, operation, trace_id, span_id, correlation_id, start_time, {col} AS v"
            "         FROM spans WHERE {where}) AS x WHERE v IS NOT NULL"
            "   WINDOW w AS (PARTITION BY service_name, operation)) AS y"
            " WHERE s > 0 AND abs(v - m) / s >= %s ORDER BY abs(v - m) / s DESC, trace_id, span_id LIMIT %s"
        ).format(col=sql.SQL(column), where=src.where)
        return [
            Outlier(
                service=r["service_name"],
                operation=r["operation"],
                trace_id=_hex(r["trace_id"]),
                span_id=_hex(r["span_id"]),
                correlation_id=r["correlation_id"],
                start_time=r["start_time"],
                value=float(r["v"]),
                mean=float(r["m"]),
                std=float(r["s"]),
                z_score=(r["v"] - r["m"]) / r["s"],
            )
            for r in self._rows(q, [*src.params, threshold, _clamp_limit(limit)])
        ]

    # -- cost ----------------------------------------------------------------------------------------------
    def costs(
        self,
        window: TimeWindow,
        filters: Filters = NO_FILTERS,
        *,
        by: str = "model",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CostRow]:
        if by not in COST_KEYS:
            raise ValueError(f"by: expected one of {', '.join(COST_KEYS)}, got {by!r}")
        column, in_rollups = COST_KEYS[by]
        src = self._source(window, filters, allow_rollup=in_rollups, dimensions=by not in ("operation", "service"))
        rows = self._aggregate(
            src,
            [("key", column)],
            latency=False,
            limit=_clamp_limit(limit),
            offset=offset,
            order="cost DESC, calls DESC",
        )
        total = self.total_cost(window, filters)
        out = []
        for r in rows:
            calls, errors, cost = int(r["calls"]), int(r["errors"]), float(r["cost"])
            out.append(
                CostRow(
                    key=r["key"] or _NONE,
                    calls=calls,
                    successes=calls - errors,
                    input_tokens=int(r["itok"]),
                    output_tokens=int(r["otok"]),
                    cost_usd=cost,
                    cost_per_success=cost / (calls - errors) if calls - errors else None,
                    share=_rate(cost, total),
                )
            )
        return out

    def total_cost(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> float:
        src = self._source(window, filters, dimensions=False)
        rows = self._aggregate(src, [("all", "'all'")], latency=False)
        return float(rows[0]["cost"]) if rows else 0.0

    def correlation_cost(self, correlation_id: str) -> CorrelationCost | None:
        """The whole cost of one request across every service it touched (any time; indexed lookup)."""
        row = self._rows(
            sql.SQL(
                "SELECT count(*)::bigint AS spans, string_agg(DISTINCT service_name, ',' ORDER BY service_name) AS svc,"
                " coalesce(sum(cost_usd), 0)::float8 AS cost, coalesce(sum(input_tokens), 0)::bigint AS itok,"
                " coalesce(sum(output_tokens), 0)::bigint AS otok, min(start_time) AS first, max(end_time) AS last"
                " FROM spans WHERE correlation_id = %s"
            ),
            [correlation_id],
        )[0]
        if not row["spans"]:
            return None
        return CorrelationCost(
            correlation_id,
            int(row["spans"]),
            row["svc"],
            row["cost"],
            int(row["itok"]),
            int(row["otok"]),
            row["first"],
            row["last"],
        )

    def cost_projection(self, filters: Filters = NO_FILTERS, now: datetime | None = None) -> CostProjection:
        """Month-to-date cost, average daily burn over the last BURN_WINDOW_DAYS days, month-end projection (UTC)."""
        now = now or datetime.now(UTC)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        mtd = self.total_cost(TimeWindow(month_start, now), filters) if now > month_start else 0.0
        burn_total = self.total_cost(TimeWindow(now - timedelta(days=BURN_WINDOW_DAYS), now), filters)
        burn = burn_total / BURN_WINDOW_DAYS
        remaining = (next_month - now).total_seconds() / 86400.0
        return CostProjection(month_start, mtd, burn, BURN_WINDOW_DAYS, remaining, mtd + burn * remaining)

    def cost_by_dimension(self, dimension: str, since: datetime, now: datetime | None = None) -> dict[str, float]:
        """Cost per value of a rollup dimension (tenant_id, agent_name, model) since an hour-aligned time."""
        if dimension not in ("tenant_id", "agent_name", "model"):
            raise ValueError(f"dimension: expected tenant_id, agent_name or model, got {dimension!r}")
        now = now or datetime.now(UTC)
        q = sql.SQL(
            "SELECT {d}, sum(cost_usd)::float8 FROM span_rollups_1h WHERE bucket_start >= %s AND bucket_start < %s"
            " GROUP BY 1"
        ).format(d=sql.Identifier(dimension))
        return {r[0]: float(r[1]) for r in self.conn.execute(q, (since, now)).fetchall()}

    # -- agent x operation (insights) ----------------------------------------------------------------------
    def agent_operations(self, window: TimeWindow, filters: Filters = NO_FILTERS) -> list[dict[str, Any]]:
        """Per (operation, agent): calls, successes, avg_ms, cost and quality average (rows with an agent only)."""
        src = self._source(window, filters)
        rows = self._aggregate(src, [("operation", "operation"), ("agent", "agent_name")], latency=False)
        return [
            {
                "operation": r["operation"],
                "agent": r["agent"],
                "calls": int(r["calls"]),
                "successes": int(r["calls"]) - int(r["errors"]),
                "avg_ms": _rate(r["dsum"], int(r["calls"])),
                "cost_usd": float(r["cost"]),
                "quality_avg": r["qsum"] / r["qcount"] if r["qcount"] else None,
            }
            for r in rows
            if r["agent"]
        ]

    def operation_series(
        self, window: TimeWindow, filters: Filters = NO_FILTERS, granularity: str = "day"
    ) -> dict[tuple[str, str], list[TimeBucket]]:
        """Per (service, operation) time series of calls, errors and average duration (no percentiles)."""
        src = self._source(window, filters, sub_day=granularity == "hour", dimensions=False, hourly="ops")
        trunc = sql.SQL("date_trunc({}, {})").format(granularity_literal(granularity), src.time).as_string(None)
        rows = self._aggregate(
            src,
            [("service", "service_name"), ("operation", "operation"), ("bucket", trunc)],
            latency=False,
            order="1",
        )
        out: dict[tuple[str, str], list[TimeBucket]] = {}
        for r in rows:
            calls, errors = int(r["calls"]), int(r["errors"])
            out.setdefault((r["service"], r["operation"]), []).append(
                TimeBucket(
                    r["bucket"],
                    calls,
                    calls - errors,
                    errors,
                    _rate(calls - errors, calls),
                    _rate(r["dsum"], calls),
                    None,
                    int(r["itok"]),
                    int(r["otok"]),
                    float(r["cost"]),
                    r["qsum"] / r["qcount"] if r["qcount"] else None,
                )
            )
        for series in out.values():
            series.sort(key=lambda b: b.bucket)
        return out

    # -- health --------------------------------------------------------------------------------------------
    def ping(self) -> float:
        """Round-trip latency of a trivial query, in ms."""
        import time

        started = time.perf_counter()
        self.conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000.0


def _metric_value(bucket: TimeBucket, metric: str) -> float | None:
    if metric == "calls":
        return float(bucket.operations)
    if metric == "success_rate":
        return bucket.success_rate
    if metric == "error_rate":
        return 1.0 - bucket.success_rate if bucket.operations else None
    if metric == "avg_ms":
        return bucket.avg_ms
    if metric == "p95_ms":
        return bucket.p95_ms
    if metric == "cost_usd":
        return bucket.cost_usd
    if metric == "quality_avg":
        return bucket.quality_avg
    raise ValueError(f"unknown trend metric {metric!r}")


def trend_points(
    series: Sequence[TimeBucket], start: datetime, granularity: str, metric: str
) -> tuple[list[float], list[float]]:
    """(x, y): x in granularity steps since ``start``; buckets where the metric is undefined are skipped."""
    step = _STEP_SECONDS[granularity]
    xs: list[float] = []
    ys: list[float] = []
    for bucket in series:
        value = _metric_value(bucket, metric)
        if value is None:
            continue
        xs.append((bucket.bucket - start).total_seconds() / step)
        ys.append(float(value))
    return xs, ys


def trend_of(metric: str, xs: Sequence[float], ys: Sequence[float]) -> Trend:
    if len(xs) < MIN_TREND_POINTS:
        return Trend(
            metric, len(xs), None, None, None, None, ys[0] if ys else None, ys[-1] if ys else None, "insufficient_data"
        )
    reg = stats.linregress(xs, ys)
    if reg.pvalue >= SIGNIFICANCE or reg.slope == 0:
        verdict = "stable"
    else:
        better = TREND_METRICS[metric]
        verdict = "improving" if (reg.slope > 0) == better else "degrading"
    return Trend(metric, reg.n, reg.slope, reg.intercept, reg.r_squared, reg.pvalue, ys[0], ys[-1], verdict)


def trends_of(series: Sequence[TimeBucket], start: datetime, granularity: str, metrics: Sequence[str]) -> list[Trend]:
    out = []
    for metric in metrics:
        xs, ys = trend_points(series, start, granularity, metric)
        out.append(trend_of(metric, xs, ys))
    return out

"""The analytics query layer: every question from docs/analytics.md as one method returning typed results.

Windows longer than a day read ``span_rollups_1h`` (percentiles from merged latency histograms, < 1 % error);
shorter windows, and questions the rollups cannot answer (users, roles, providers, correlation ids, outliers,
numeric attributes, exports), read raw ``spans`` exactly. Every statement is parameterised. Where a query reads
from and the shared aggregation live in ``_aggregate``; trend math in ``trends``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql

from ._aggregate import (
    DEFAULT_LIMIT,
    DEFAULT_SLOW_MS,
    DEFAULT_VERY_SLOW_MS,
    MAX_LIMIT,
    Thresholds,
    _clamp_limit,
    _rate,
)
from ._sql import Source, granularity_literal, source_for
from .cost_queries import COST_KEYS, CostQueries
from .models import (
    AgentStats,
    OperationPerformance,
    Outlier,
    PercentileSummary,
    TimeBucket,
    Trend,
    UsagePoint,
    UserActivity,
)
from .series import SeriesQueries
from .trends import TREND_METRICS, trend_of, trend_points, trends_of
from .window import NO_FILTERS, Filters, TimeWindow

__all__ = [
    "COST_KEYS",
    "DEFAULT_LIMIT",
    "DEFAULT_SLOW_MS",
    "DEFAULT_VERY_SLOW_MS",
    "DEFAULT_Z_THRESHOLD",
    "EXPORT_COLUMNS",
    "MAX_LIMIT",
    "PERCENTILE_FIELDS",
    "TREND_METRICS",
    "Analytics",
    "Thresholds",
    "trend_of",
    "trend_points",
    "trends_of",
]

DEFAULT_Z_THRESHOLD = 3.0
_NO_QUANTILES: tuple[None, ...] = (None,) * 5

PERCENTILE_FIELDS = ("duration", "cost", "tokens", "quality")
# The hot columns of raw spans an export carries, in order.
EXPORT_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "end_time",
    "duration_ms",
    "service_name",
    "operation",
    "status_code",
    "correlation_id",
    "tenant_id",
    "user_id",
    "session_id",
    "agent_name",
    "agent_role",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "quality_score",
    "error_type",
    "http_route",
    "http_status_code",
)


def _hex(value: bytes | None) -> str:
    return bytes(value).hex() if value is not None else ""


class Analytics(CostQueries, SeriesQueries):
    """Every analytics question, over one psycopg connection."""

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
            # Spans without token counts are not LLM calls: NULL, skipped like cost and quality.
            expr = sql.SQL(
                "CASE WHEN input_tokens IS NOT NULL OR output_tokens IS NOT NULL"
                " THEN (coalesce(input_tokens, 0) + coalesce(output_tokens, 0))::float8 END"
            )
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
        return PercentileSummary.of(
            field,
            int(r["n"]),
            r["pct"] or _NO_QUANTILES,
            mean=r["mean"],
            std=r["std"],
            min=r["min"],
            max=r["max"],
            exact=True,
        )

    def _duration_percentiles_from_rollups(self, src: Source) -> PercentileSummary:
        rows = self._aggregate(src, [("all", "'all'")], latency=True, quantiles=(0.5, 0.75, 0.9, 0.95, 0.99))
        if not rows or not rows[0]["calls"]:
            return PercentileSummary.of(
                "duration", 0, _NO_QUANTILES, mean=None, std=None, min=None, max=None, exact=False
            )
        r = rows[0]
        n = int(r["calls"])
        pct = r["pct"]
        # From bucket representative values: the spread is known to the histogram's resolution (< 1 %).
        m = r["vsum"] / n
        std = math.sqrt(max(r["vsq"] / n - m * m, 0.0))
        return PercentileSummary.of(
            "duration", n, pct, mean=r["dsum"] / n, std=std, min=r["dmin"], max=r["dmax"], exact=False
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

    # -- raw spans -----------------------------------------------------------------------------------------
    def spans(self, window: TimeWindow, filters: Filters = NO_FILTERS, *, limit: int) -> Iterator[dict[str, Any]]:
        """The window's raw spans, oldest first, as ``EXPORT_COLUMNS`` -> value (ids as hex), streamed through a
        server-side cursor so a month of spans never sits in memory. Consume it before the next query."""
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        src = source_for(window, filters, allow_rollup=False)
        query = sql.SQL("SELECT {cols} FROM spans WHERE {where} ORDER BY start_time LIMIT %s").format(
            cols=sql.SQL(", ").join(sql.Identifier(col) for col in EXPORT_COLUMNS), where=src.where
        )
        with self.conn.transaction(), self.conn.cursor(name="otel_metrics_export") as cur:
            cur.execute(query, [*src.params, limit])
            for row in cur:
                yield {
                    col: value.hex() if isinstance(value, bytes) else value
                    for col, value in zip(EXPORT_COLUMNS, row, strict=True)
                }

    # -- health --------------------------------------------------------------------------------------------
    def ping(self) -> float:
        """Round-trip latency of a trivial query, in ms."""
        started = time.perf_counter()
        self.conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000.0

"""What the overview and costs pages show, read from the rollups (span_rollups_1h and the daily caches) through
the query layer's sources, so a 30-day view costs a few thousand rollup rows, not millions of spans. The costs
page's request-level figures (most expensive requests, cost per request, unpriced calls) need raw spans: they are
bounded by the window and the filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from .._sql import FILTER_COLUMNS, ROLLUP_TABLE, Part, Source, granularity_literal
from ..queries import Analytics
from ..window import Filters, TimeWindow

__all__ = [
    "COST_DIMENSIONS",
    "CostView",
    "Series",
    "ServiceSeries",
    "cost_view",
    "granularity_for",
    "service_series",
    "service_totals",
]

# Cost breakdowns: spans column, and whether the rollups carry it (else raw spans are read).
COST_DIMENSIONS: dict[str, tuple[str, bool]] = {
    "model": ("model", True),
    "provider": ("provider", False),
    "tenant": ("tenant_id", True),
    "agent": ("agent_name", True),
    "user": ("user_id", False),
    "feature": ("feature", False),
}
# Keys drawn as their own line on the cost chart; the rest are summed into "other".
CHARTED_KEYS = 8
TOP_REQUESTS = 10
# Request-level figures (requests, cost per request, most expensive requests, unpriced calls) need raw spans; over
# a longer window they cover its last day only, so a month's costs page reads a day of spans, not a month.
REQUEST_WINDOW = timedelta(days=1)
# Rollup windows up to this long are drawn per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=7)
# Windows up to this long read raw spans, in buckets of (window up to, bucket seconds); longer ones the rollups.
RAW_BUCKETS = ((timedelta(hours=1), 60), (timedelta(hours=6), 300))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def granularity_for(window: TimeWindow) -> str:
    return "hour" if window.duration <= HOURLY_UP_TO else "day"


@dataclass(frozen=True)
class _Buckets:
    source: Any  # the query layer's Source
    expr: str  # SQL for a row's bucket start
    step: float  # seconds
    label: str  # "5 min", "hour", "day"
    x: list[float]  # every bucket start of the window (epoch seconds), empty ones included

    def index(self, bucket: datetime) -> int:
        return int((bucket.timestamp() - self.x[0]) // self.step)


def _hourly_rollups(window: TimeWindow, filters: Filters) -> Source:
    """span_rollups_1h over the hour-aligned window: the query layer reads raw spans up to a day, but a chart of
    hours needs no more than the rollups, and a day of raw spans is 30x the rows."""
    aligned = window.rollup_aligned()
    where, params = _where(aligned, filters, "bucket_start")
    return Source([Part(ROLLUP_TABLE, where, params)], "bucket_start", aligned)


def _buckets(a: Analytics, window: TimeWindow, filters: Filters, **source: Any) -> _Buckets:
    granularity = granularity_for(window)
    raw = window.duration <= RAW_BUCKETS[-1][0]
    if not raw and not window.uses_rollups and filters.rollup_compatible() and source.get("allow_rollup", True):
        src = _hourly_rollups(window, filters)
    else:
        src = a._source(window, filters, sub_day=granularity == "hour", **source)
    if src.rollup or not raw:  # raw spans over a long window: a breakdown the rollups do not carry
        step = 3600.0 if granularity == "hour" else 86400.0
        expr = sql.SQL("date_trunc({}, {})").format(granularity_literal(granularity), src.time)
        label = granularity
    else:
        step = float(next(s for limit, s in RAW_BUCKETS if window.duration <= limit))
        expr = sql.SQL("date_bin({}, {}, {})").format(
            sql.Literal(timedelta(seconds=step)), src.time, sql.Literal(_EPOCH)
        )
        label = f"{step / 60:.0f} min"
    first = (src.window.start.timestamp() // step) * step
    x = [first + i * step for i in range(int((src.window.end.timestamp() - first) // step) + 1)]
    return _Buckets(src, expr.as_string(a.conn), step, label, x)


@dataclass(frozen=True)
class Series:
    """Values per time bucket (epoch seconds), aligned on one x axis; None where a series has no data."""

    x: list[float]
    lines: dict[str, list[float | None]]
    step: float  # seconds per bucket


@dataclass(frozen=True)
class ServiceSeries:
    granularity: str  # bucket width, as shown
    rate: Series  # calls per second, per service
    error_rate: Series  # percent, per service
    latency: dict[str, Series]  # per service: p50, p95, p99 (ms)
    cost: Series  # USD per bucket, all services


def service_series(a: Analytics, window: TimeWindow, filters: Filters) -> ServiceSeries:
    b = _buckets(a, window, filters, dimensions=False, hourly="ops")
    rows = a._aggregate(
        b.source,
        [("service", "service_name"), ("bucket", b.expr)],
        latency=True,
        order="1",
        quantiles=(0.5, 0.95, 0.99),
    )
    services = sorted({r["service"] for r in rows})
    n = len(b.x)
    rate: dict[str, list[float | None]] = {s: [0.0] * n for s in services}
    errors: dict[str, list[float | None]] = {s: [None] * n for s in services}
    latency: dict[str, dict[str, list[float | None]]] = {
        s: {q: [None] * n for q in ("p50", "p95", "p99")} for s in services
    }
    cost: list[float | None] = [0.0] * n
    for r in rows:
        i, s, calls = b.index(r["bucket"]), r["service"], int(r["calls"])
        if not 0 <= i < n:
            continue
        rate[s][i] = calls / b.step
        errors[s][i] = 100.0 * int(r["errors"]) / calls if calls else None
        for name, value in zip(("p50", "p95", "p99"), r["pct"] or [None, None, None], strict=True):
            latency[s][name][i] = value
        cost[i] = (cost[i] or 0.0) + float(r["cost"])
    return ServiceSeries(
        b.label,
        Series(b.x, rate, b.step),
        Series(b.x, errors, b.step),
        {s: Series(b.x, dict(v), b.step) for s, v in latency.items()},
        Series(b.x, {"cost (USD)": cost}, b.step),
    )


def service_totals(a: Analytics, window: TimeWindow, filters: Filters) -> list[dict[str, Any]]:
    """Per service over the whole window (from the same source as the series): calls, errors, error rate,
    p50/p95/p99 (ms)."""
    b = _buckets(a, window, filters, dimensions=False, hourly="ops")
    rows = a._aggregate(b.source, [("service", "service_name")], latency=True, quantiles=(0.5, 0.95, 0.99))
    out = []
    for r in rows:
        calls, errors = int(r["calls"]), int(r["errors"])
        p50, p95, p99 = r["pct"] or [None, None, None]
        out.append(
            {
                "service": r["service"],
                "calls": calls,
                "errors": errors,
                "error_rate": errors / calls if calls else 0.0,
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
            }
        )
    return out


@dataclass(frozen=True)
class CostView:
    by: str
    granularity: str
    series: Series  # cost per bucket of the most expensive keys (and "other")
    rows: list[dict[str, Any]]  # key, calls, cost_usd, cost_per_call, share, input_tokens, output_tokens
    total_usd: float
    request_window: TimeWindow  # what the request-level figures cover (the window's last REQUEST_WINDOW at most)
    requests: int  # distinct correlation ids with a span in request_window
    recent_cost_usd: float  # cost in request_window
    top_requests: list[dict[str, Any]]  # correlation_id, trace_id, cost_usd, spans, services, start_time
    unpriced: list[dict[str, Any]]  # model, provider, calls, input_tokens, output_tokens


def _where(window: TimeWindow, filters: Filters, time_column: str) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("{0} >= %s AND {0} < %s").format(sql.Identifier(time_column))]
    params: list[Any] = [window.start, window.end]
    for name, value in filters.items():
        parts.append(sql.SQL("{} = %s").format(sql.Identifier(FILTER_COLUMNS[name])))
        params.append(value)
    return sql.SQL(" AND ").join(parts), params


def _requests(a: Analytics, window: TimeWindow, filters: Filters) -> tuple[int, float, list[dict[str, Any]]]:
    where, params = _where(window, filters, "start_time")
    totals = a._rows(
        sql.SQL(
            "SELECT count(DISTINCT correlation_id)::bigint AS n, coalesce(sum(cost_usd), 0)::float8 AS cost"
            " FROM spans WHERE {}"
        ).format(where),
        params,
    )[0]
    top = a._rows(
        sql.SQL(
            "SELECT correlation_id, encode((array_agg(trace_id ORDER BY cost_usd DESC))[1], 'hex') AS trace_id,"
            " sum(cost_usd)::float8 AS cost_usd,"
            " count(*)::bigint AS spans, string_agg(DISTINCT service_name, ',' ORDER BY service_name) AS services,"
            " min(tenant_id) AS tenant, min(start_time) AS start_time"
            " FROM spans WHERE {} AND cost_usd > 0 AND correlation_id IS NOT NULL"
            " GROUP BY correlation_id ORDER BY 3 DESC, 1 LIMIT %s"
        ).format(where),
        [*params, TOP_REQUESTS],
    )
    return int(totals["n"]), float(totals["cost"]), top


def _unpriced(a: Analytics, window: TimeWindow, filters: Filters) -> list[dict[str, Any]]:
    where, params = _where(window, filters, "start_time")
    return a._rows(
        sql.SQL(
            "SELECT model, coalesce(provider, '') AS provider, count(*)::bigint AS calls,"
            " coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
            " coalesce(sum(output_tokens), 0)::bigint AS output_tokens"
            " FROM spans WHERE {} AND model IS NOT NULL AND cost_usd IS NULL"
            " AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL) GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50"
        ).format(where),
        params,
    )


def cost_view(a: Analytics, window: TimeWindow, filters: Filters, by: str) -> CostView:
    if by not in COST_DIMENSIONS:
        raise ValueError(f"by: expected one of {', '.join(COST_DIMENSIONS)}, got {by!r}")
    column, in_rollups = COST_DIMENSIONS[by]
    b = _buckets(a, window, filters, allow_rollup=in_rollups)
    rows = a._aggregate(b.source, [("key", column), ("bucket", b.expr)], latency=False, order="1")
    totals: dict[str, dict[str, float]] = {}
    for r in rows:
        t = totals.setdefault(r["key"] or "(none)", {"calls": 0, "cost_usd": 0.0, "itok": 0, "otok": 0})
        t["calls"] += int(r["calls"])
        t["cost_usd"] += float(r["cost"])
        t["itok"] += int(r["itok"])
        t["otok"] += int(r["otok"])
    total = sum(t["cost_usd"] for t in totals.values())
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["cost_usd"], kv[0]))
    table = [
        {
            "key": key,
            "calls": int(t["calls"]),
            "cost_usd": t["cost_usd"],
            "cost_per_call": t["cost_usd"] / t["calls"] if t["calls"] else None,
            "share": t["cost_usd"] / total if total else 0.0,
            "input_tokens": int(t["itok"]),
            "output_tokens": int(t["otok"]),
        }
        for key, t in ranked
    ]
    charted = [k for k, t in ranked[:CHARTED_KEYS] if t["cost_usd"] > 0]
    n = len(b.x)
    lines: dict[str, list[float | None]] = {k: [0.0] * n for k in charted}
    if any(t["cost_usd"] > 0 for _, t in ranked[len(charted) :]):
        lines["other"] = [0.0] * n
    for r in rows:
        key, i = r["key"] or "(none)", b.index(r["bucket"])
        line = lines[key] if key in lines else lines.get("other")
        if line is not None and 0 <= i < n:
            line[i] = (line[i] or 0.0) + float(r["cost"])
    recent = TimeWindow(max(window.start, window.end - REQUEST_WINDOW), window.end)
    requests, recent_cost, top = _requests(a, recent, filters)
    series = Series(b.x, lines, b.step)
    unpriced = _unpriced(a, recent, filters)
    return CostView(by, b.label, series, table, total, recent, requests, recent_cost, top, unpriced)

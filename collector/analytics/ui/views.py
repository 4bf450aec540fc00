"""What the overview and costs pages show, from the query layer's keyed series (``Analytics.keyed_series``: the
rollups beyond six hours, so a 30-day view costs a few thousand rollup rows, not millions of spans). The costs page's
request-level figures cover the whole window: cost per request from the rollups (``Analytics.request_cost``), the
most expensive requests and the unpriced calls from bounded reads of raw spans (``Analytics.costliest_requests``,
``Analytics.unpriced_calls``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import RequestCost
from ..queries import Analytics
from ..series import Axis
from ..window import Filters, TimeWindow

__all__ = [
    "COST_DIMENSIONS",
    "CostView",
    "Series",
    "ServiceSeries",
    "cost_view",
    "request_total",
    "service_series",
    "service_totals",
]

# Cost breakdowns (keys of ``series.SERIES_KEYS``).
COST_DIMENSIONS = ("model", "provider", "tenant", "agent", "user", "feature")
# Keys drawn as their own line on the cost chart; the rest are summed into "other".
CHARTED_KEYS = 8
TOP_REQUESTS = 10


@dataclass(frozen=True)
class Series:
    """Values per time bucket (epoch seconds), aligned on one x axis; None where a series has no data."""

    x: list[float]
    lines: dict[str, list[float | None]]
    step: float  # seconds per bucket


@dataclass(frozen=True)
class ServiceSeries:
    granularity: str  # bucket width, as shown
    rate: Series  # requests (root or SERVER spans) per second, per service
    error_rate: Series  # percent of spans in error, per service
    latency: dict[str, Series]  # per service: p50, p95, p99 (ms) of every span
    cost: Series  # USD per bucket, all services


def _series(axis: Axis, lines: dict[str, list[float | None]]) -> Series:
    return Series(axis.x, lines, axis.step)


def service_series(a: Analytics, window: TimeWindow, filters: Filters) -> tuple[ServiceSeries, list[dict[str, Any]]]:
    """Per service over time, and per service over the whole window (``service_totals``), from one read."""
    found, totals = a.keyed_series_and_totals(window, filters, "service")
    axis, n = found.axis, len(found.axis.x)
    services = sorted({r["key"] for r in found.rows})
    rate: dict[str, list[float | None]] = {s: [0.0] * n for s in services}
    errors: dict[str, list[float | None]] = {s: [None] * n for s in services}
    latency: dict[str, dict[str, list[float | None]]] = {
        s: {q: [None] * n for q in ("p50", "p95", "p99")} for s in services
    }
    cost: list[float | None] = [0.0] * n
    for r in found.rows:
        i, s, calls = axis.index(r["bucket"]), r["key"], int(r["calls"])
        if not 0 <= i < n:
            continue
        rate[s][i] = int(r["requests"]) / axis.step
        errors[s][i] = 100.0 * int(r["errors"]) / calls if calls else None
        for name, value in zip(("p50", "p95", "p99"), r["pct"] or [None, None, None], strict=True):
            latency[s][name][i] = value
        cost[i] = (cost[i] or 0.0) + float(r["cost"])
    series = ServiceSeries(
        axis.label,
        _series(axis, rate),
        _series(axis, errors),
        {s: _series(axis, dict(v)) for s, v in latency.items()},
        _series(axis, {"cost (USD)": cost}),
    )
    return series, service_totals(totals)


def service_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per service over the whole window: requests (root or SERVER spans: requests into the service), roots (root
    spans: the traces that entered through it; None: not counted, rollups written before migration 0030), calls
    (spans), errors, error rate, p50/p95/p99 (ms); busiest first."""
    out = []
    for r in sorted(rows, key=lambda r: (-int(r["calls"]), r["key"])):
        calls, errors = int(r["calls"]), int(r["errors"])
        p50, p95, p99 = r["pct"] or [None, None, None]
        out.append(
            {
                "service": r["key"],
                "requests": int(r["requests"]),
                "roots": None if r["roots"] is None else int(r["roots"]),
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
class RequestTotal:
    """The overview's request count: traces, or requests into the filtered service."""

    basis: str  # "trace": root spans, each request once whatever services it entered (as the costs page counts)
    requests: int | None  # None: the window read rollups written before migration 0030, not yet counted again


def request_total(performance: list[dict[str, Any]], filters: Filters) -> RequestTotal:
    """From ``service_totals``' rows: a trace has one root, in the service it entered first, so the services' roots
    add up to the traces; requests into each service would count a request once per service it went through."""
    if filters.service is not None:
        return RequestTotal("entry", sum(p["requests"] for p in performance))
    roots = [p["roots"] for p in performance]
    return RequestTotal("trace", None if None in roots else sum(roots))


@dataclass(frozen=True)
class CostView:
    by: str
    granularity: str
    series: Series  # cost per bucket of the most expensive keys (and "other")
    rows: list[dict[str, Any]]  # key, calls, cost_usd, cost_per_call, share, input_tokens, output_tokens
    total_usd: float
    per_request: RequestCost  # traces, or requests into the filtered service
    top_requests: list[dict[str, Any]]  # correlation_id, trace_id, cost_usd, spans, services, start_time
    unpriced: list[dict[str, Any]]  # model, provider, calls, input_tokens, output_tokens


def _totals(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    totals: dict[str, dict[str, float]] = {}
    for r in rows:
        t = totals.setdefault(r["key"] or "(none)", {"calls": 0, "cost_usd": 0.0, "itok": 0, "otok": 0})
        t["calls"] += int(r["calls"])
        t["cost_usd"] += float(r["cost"])
        t["itok"] += int(r["itok"])
        t["otok"] += int(r["otok"])
    return sorted(totals.items(), key=lambda kv: (-kv[1]["cost_usd"], kv[0]))


def cost_view(a: Analytics, window: TimeWindow, filters: Filters, by: str) -> CostView:
    if by not in COST_DIMENSIONS:
        raise ValueError(f"by: expected one of {', '.join(COST_DIMENSIONS)}, got {by!r}")
    found = a.keyed_series(window, filters, by, latency=False)
    ranked = _totals(found.rows)
    total = sum(t["cost_usd"] for _, t in ranked)
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
    axis, n = found.axis, len(found.axis.x)
    lines: dict[str, list[float | None]] = {k: [0.0] * n for k in charted}
    if any(t["cost_usd"] > 0 for _, t in ranked[len(charted) :]):
        lines["other"] = [0.0] * n
    for r in found.rows:
        key, i = r["key"] or "(none)", axis.index(r["bucket"])
        line = lines[key] if key in lines else lines.get("other")
        if line is not None and 0 <= i < n:
            line[i] = (line[i] or 0.0) + float(r["cost"])
    per_request = a.request_cost(window, filters)
    top = a.costliest_requests(window, filters, TOP_REQUESTS)
    unpriced = a.unpriced_calls(window, filters)
    return CostView(by, axis.label, _series(axis, lines), table, total, per_request, top, unpriced)

"""The analytics API's routes as data (``API_ROUTES``) and their handlers. Every list answer is
``{"items": [...], "limit"?, "offset"?, "window"?}``."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import JSONResponse

from . import compose
from .alerts import ALERT_STATUSES, AlertStore
from .budgets import (
    DEFAULT_CRITICAL_RATIO,
    DEFAULT_WARNING_RATIO,
    PERIODS,
    SCOPES,
    Budget,
    BudgetStore,
    agent_budget_map,
)
from .models import to_jsonable
from .params import ApiError, checked_text
from .queries import COST_KEYS, DEFAULT_Z_THRESHOLD, TREND_METRICS, Analytics
from .routing import Call, Param, RouteSpec
from .session import check_known
from .summary import overall_status, service_health, summary
from .unpriced import unpriced_models
from .window import FILTER_NAMES, GRANULARITIES, Filters, TimeWindow

__all__ = ["API_ROUTES", "DEGRADED_DB_LATENCY_MS", "budget_from_body", "many"]

# The health check calls the database degraded above this round-trip latency.
DEGRADED_DB_LATENCY_MS = 250.0

_WINDOW = (
    Param("hours", "number", "Window: the last N hours"),
    Param("since", description="Window start (ISO 8601 or 12h/7d/2w ago)"),
    Param("until", description="Window end (ISO 8601 or relative)"),
)
_FILTERS = tuple(Param(k, description=f"Only this {k}") for k in FILTER_NAMES)
_PAGE = (Param("limit", "integer", "At most this many items"), Param("offset", "integer", "Skip this many items"))
_ID = Param("id", "integer", "Alert id", where="path")


def many(items: list[Any], window: TimeWindow | None = None, page: tuple[int, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"items": items}
    if page is not None:
        out["limit"], out["offset"] = page
    if window is not None:
        out["window"] = {"start": window.start, "end": window.end, "source": "rollup" if window.uses_rollups else "raw"}
    return out


def _checked(call: Call) -> Filters:
    filters = call.args.filters()
    check_known("service", filters.service, call.analytics.services())
    return filters


# -- service ---------------------------------------------------------------------------------------------------
async def _health(call: Call) -> JSONResponse:
    def check(a: Analytics) -> dict[str, Any]:
        latency = a.ping()
        status = "healthy" if latency < DEGRADED_DB_LATENCY_MS else "degraded"
        return {"status": status, "latency_ms": round(latency, 3)}

    try:
        database = await call.with_analytics(check)
    except Exception as exc:  # any failure to reach the database is what this check reports
        database = {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}".strip()}
    components = dict(call.api.component_status())
    pipelines = {k: dict(v) for k, v in components.items() if k.startswith("pipeline/")}
    queues = {
        k: v.get("queue_size")
        for k, v in components.items()
        if isinstance(v, Mapping) and v.get("queue_size") is not None
    }
    healthy = database["status"] == "healthy" and all(p.get("healthy", True) for p in pipelines.values())
    body = {
        "status": "healthy" if healthy else "degraded",
        "uptime_s": round(time.time() - call.api.started, 3),
        "time": datetime.now(UTC),
        "checks": {"database": database, "pipelines": pipelines, "queues": queues},
    }
    return JSONResponse(to_jsonable(body), 200 if healthy else 503)


async def _openapi(call: Call) -> Any:
    return call.api.openapi()


# -- performance and usage -------------------------------------------------------------------------------------
def _performance(call: Call) -> Any:
    window, page = call.args.window(), call.args.page()
    group_by = call.args.choice("group_by", "operation", ("operation", "service"))
    items = call.analytics.performance(window, _checked(call), group_by=group_by, limit=page[0], offset=page[1])
    return many(items, window, page)


def _timeseries(call: Call) -> Any:
    window = call.args.window()
    granularity = call.args.choice("granularity", "hour", GRANULARITIES)
    return many(call.analytics.timeseries(window, _checked(call), granularity), window)


def _agents(call: Call) -> Any:
    a, window, page = call.analytics, call.args.window(), call.args.page()
    by = call.args.choice("by", "agent", ("agent", "role"))
    budgets = agent_budget_map(BudgetStore(a.conn).status())
    return many(a.agents(window, _checked(call), by=by, budgets=budgets, limit=page[0], offset=page[1]), window, page)


def _users(call: Call) -> Any:
    a, window, page = call.analytics, call.args.window(), call.args.page()
    filters = _checked(call)
    out = many(a.users(window, filters, limit=page[0], offset=page[1]), window, page)
    out["active_users"] = a.active_users(window, filters)
    return out


def _top_operations(call: Call) -> Any:
    window, page = call.args.window(), call.args.page()
    return many(call.analytics.top_operations(window, _checked(call), page[0]), window, page)


def _hourly(call: Call) -> Any:
    window = call.args.window()
    return many(call.analytics.hourly_pattern(window, _checked(call)), window)


def _percentiles(call: Call) -> Any:
    field = call.args.get("field", "duration") or "duration"
    return call.analytics.percentiles(call.args.window(), _checked(call), field)


def _trends(call: Call) -> Any:
    window = call.args.window(default_hours=24.0 * 7)
    granularity = call.args.choice("granularity", "day", GRANULARITIES)
    metrics = call.args.list("metric") or list(TREND_METRICS)
    return many(call.analytics.trends(window, _checked(call), granularity, metrics), window)


def _outliers(call: Call) -> Any:
    window, page = call.args.window(), call.args.page()
    items = call.analytics.outliers(
        window,
        _checked(call),
        metric=call.args.get("metric", "duration") or "duration",
        threshold=call.args.number("threshold", DEFAULT_Z_THRESHOLD) or 0.0,
        limit=page[0],
    )
    return many(items, window, page)


# -- cost and budgets ------------------------------------------------------------------------------------------
def _costs(call: Call) -> Any:
    window, page = call.args.window(), call.args.page()
    by = call.args.choice("by", "model", tuple(COST_KEYS))
    return many(call.analytics.costs(window, _checked(call), by=by, limit=page[0], offset=page[1]), window, page)


def _unpriced(call: Call) -> Any:
    window, page = call.args.window(), call.args.page()
    return many(unpriced_models(call.analytics.conn, window, limit=page[0]), window, page)


def _per_request(call: Call) -> Any:
    return call.analytics.request_cost(call.args.window(), _checked(call))


def _projection(call: Call) -> Any:
    return call.analytics.cost_projection(_checked(call))


def _correlation(call: Call) -> Any:
    cid = call.path("correlation_id")
    found = call.analytics.correlation_cost(cid)
    if found is None:
        raise ApiError(f"no spans with correlation id {cid!r}", 404)
    return found


def _budgets(call: Call) -> Any:
    return many(BudgetStore(call.analytics.conn).status())


def _body_text(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise ApiError(f"body.{key}: expected a string, got {type(value).__name__}")
    return checked_text(f"body.{key}", value)


def _body_number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(f"body.{key}: expected a finite number, got {value!r}"[:200])
    return float(value)


def budget_from_body(body: Any) -> Budget:
    """The budget a JSON body describes (``PUT /budgets`` and the UI's budget form), checked; ApiError naming the
    key otherwise."""
    if not isinstance(body, dict):
        raise ApiError("body: expected a JSON object with scope, name, period, amount_usd")
    allowed = {"scope", "name", "period", "amount_usd", "warning_ratio", "critical_ratio"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(f"body: unknown key(s) {unknown}; expected some of {sorted(allowed)}"[:400])
    budget = Budget(
        _body_text(body, "scope", ""),
        _body_text(body, "name", ""),
        _body_text(body, "period", "month"),
        _body_number(body, "amount_usd", -1.0),
        _body_number(body, "warning_ratio", DEFAULT_WARNING_RATIO),
        _body_number(body, "critical_ratio", DEFAULT_CRITICAL_RATIO),
    )
    errors = budget.validate()
    if errors:
        raise ApiError("; ".join(errors))
    return budget


def _budget_put(call: Call) -> Any:
    budget = budget_from_body(call.body)
    store = BudgetStore(call.analytics.conn)
    store.set(budget)
    return next(s for s in store.status() if (s.scope, s.name, s.period) == (budget.scope, budget.name, budget.period))


def _budget_delete(call: Call) -> Any:
    scope, name, period = (call.path(k) for k in ("scope", "name", "period"))
    if scope not in SCOPES or period not in PERIODS:
        raise ApiError(f"expected scope in {list(SCOPES)} and period in {list(PERIODS)}")
    if not BudgetStore(call.analytics.conn).delete(scope, name, period):
        raise ApiError(f"no budget {scope}/{name}/{period}", 404)
    return {"deleted": f"{scope}/{name}/{period}"}


# -- advice ----------------------------------------------------------------------------------------------------
def _window(call: Call, lookback: timedelta) -> TimeWindow:
    return call.args.window(default_hours=lookback.total_seconds() / 3600.0)


def _recommendations(call: Call) -> Any:
    window = _window(call, compose.ADVICE_LOOKBACK)
    return many(compose.recommendations(call.analytics, window, _checked(call)), window)


def _insights(call: Call) -> Any:
    window = _window(call, compose.INSIGHTS_LOOKBACK)
    return many(compose.insights(call.analytics, window, _checked(call)), window)


def _business_value(call: Call) -> Any:
    minutes, rate = call.args.number("minutes_saved"), call.args.number("hourly_rate")
    if minutes is None or rate is None:
        raise ApiError("minutes_saved and hourly_rate are required")
    window = _window(call, compose.ADVICE_LOOKBACK)
    return compose.business_value(call.analytics, window, _checked(call), minutes, rate)


# -- alerts and status -----------------------------------------------------------------------------------------
def _alert_id(call: Call) -> int:
    text = call.path("id")
    if not text.isascii() or not text.isdigit() or len(text) > 18:  # ids are bigint serials
        raise ApiError(f"id: expected an alert id (a positive integer), got {text[:40]!r}")
    return int(text)


def _alerts(call: Call) -> Any:
    page = call.args.page()
    items = AlertStore(call.analytics.conn).list(call.args.get("status"), limit=page[0], offset=page[1])
    return many(items, page=page)


async def _alerts_evaluate(call: Call) -> Any:
    config = call.api.config
    rules = compose.alert_rules(config)
    round_ = await call.with_analytics(lambda a: compose.record_alert_round(a, rules))
    await compose.deliver_alert_round(round_, config.alerts.webhook)
    return many(round_.opened)


def _alert_ack(call: Call) -> Any:
    alert_id = _alert_id(call)
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise ApiError("body: expected a JSON object (optionally with by)")
    by = None if body.get("by") is None else _body_text(body, "by", "")
    found = AlertStore(call.analytics.conn).acknowledge(alert_id, by)
    if found is None:
        raise ApiError(f"no active alert with id {alert_id}", 404)
    return found


def _alert_resolve(call: Call) -> Any:
    alert_id = _alert_id(call)
    found = AlertStore(call.analytics.conn).resolve(alert_id)
    if found is None:
        raise ApiError(f"no open alert with id {alert_id}", 404)
    return found


def _summary(call: Call) -> Any:
    return summary(call.analytics)


def _services(call: Call) -> Any:
    services = service_health(call.analytics)
    out = many(services)
    out["status"] = overall_status(services)
    return out


_W, _F, _P = _WINDOW, _FILTERS, _PAGE
_PATH = {name: Param(name, where="path") for name in ("correlation_id", "scope", "name", "period")}
_R = RouteSpec

# One route per row, like the table it is.
# fmt: off
API_ROUTES: tuple[RouteSpec, ...] = (
    _R("GET", "/health", _health, "Health: database reachability and latency, pipelines, queues, uptime", auth=False),
    _R("GET", "/openapi.json", _openapi, "This document", auth=False),
    _R(
        "GET", "/performance", _performance, "Calls, latency percentiles, error rate, slow counts",
        result="OperationPerformance", many=True,
        params=(*_W, *_F, *_P, Param("group_by", enum=("operation", "service"))),
    ),
    _R(
        "GET", "/timeseries", _timeseries, "Time series per hour/day/week/month",
        result="TimeBucket", many=True, params=(*_W, *_F, Param("granularity", enum=GRANULARITIES)),
    ),
    _R(
        "GET", "/agents", _agents, "Per agent or role: tasks, success, latency, tokens, cost, budget, quality",
        result="AgentStats", many=True, params=(*_W, *_F, *_P, Param("by", enum=("agent", "role"))),
    ),
    _R(
        "GET", "/users", _users, "Per user: requests, successes, avg duration, first/last seen",
        result="UserActivity", many=True, params=(*_W, *_F, *_P),
    ),
    _R(
        "GET", "/usage/operations", _top_operations, "Most used operations",
        result="UsagePoint", many=True, params=(*_W, *_F, *_P),
    ),
    _R(
        "GET", "/usage/hourly", _hourly, "Calls per hour of day (UTC)",
        result="UsagePoint", many=True, params=(*_W, *_F),
    ),
    _R(
        "GET", "/percentiles", _percentiles, "Distribution of duration, cost, tokens, quality or an attribute",
        result="PercentileSummary", params=(*_W, *_F, Param("field")),
    ),
    _R(
        "GET", "/trends", _trends, "Least-squares trends with r², p-value and verdict",
        result="Trend", many=True,
        params=(
            *_W, *_F, Param("granularity", enum=GRANULARITIES),
            Param("metric", enum=tuple(TREND_METRICS), repeated=True),
        ),
    ),
    _R(
        "GET", "/outliers", _outliers, "Spans by z-score within their operation",
        result="Outlier", many=True,
        params=(*_W, *_F, *_P, Param("metric", enum=("duration", "cost")), Param("threshold", "number")),
    ),
    _R(
        "GET", "/costs", _costs, "Cost breakdown",
        result="CostRow", many=True, params=(*_W, *_F, *_P, Param("by", enum=tuple(COST_KEYS))),
    ),
    _R(
        "GET", "/costs/unpriced", _unpriced, "LLM calls with tokens but no price, by provider and model",
        result="UnpricedModel", many=True, params=(*_W, Param("limit", "integer", "At most this many items")),
    ),
    _R(
        "GET", "/costs/per-request", _per_request, "Cost per request: per trace, or per request into a service",
        result="RequestCost", params=(*_W, *_F),
    ),
    _R(
        "GET", "/costs/projection", _projection, "Month-to-date, daily burn, month-end projection",
        result="CostProjection", params=_F,
    ),
    _R(
        "GET", "/costs/correlation/{correlation_id}", _correlation, "Whole cost of one request",
        result="CorrelationCost", params=(_PATH["correlation_id"],),
    ),
    _R("GET", "/budgets", _budgets, "Budgets with spend, utilization and status", result="BudgetStatus", many=True),
    _R("PUT", "/budgets", _budget_put, "Create or replace a budget", result="BudgetStatus", body="Budget"),
    _R(
        "DELETE", "/budgets/{scope}/{name}/{period}", _budget_delete, "Delete a budget",
        params=(_PATH["scope"], _PATH["name"], _PATH["period"]),
    ),
    _R(
        "GET", "/recommendations", _recommendations, "Reduce budget, pause, increase capacity, review",
        result="Recommendation", many=True, params=(*_W, *_F),
    ),
    _R(
        "GET", "/insights", _insights, "Fastest, cheapest, best agents; peak hours; degrading operations",
        result="Insight", many=True, params=(*_W, *_F),
    ),
    _R(
        "GET", "/business-value", _business_value, "Savings and ROI from a baseline",
        result="BusinessValue",
        params=(
            *_W, *_F, Param("minutes_saved", "number", required=True), Param("hourly_rate", "number", required=True),
        ),
    ),
    _R(
        "GET", "/alerts", _alerts, "Stored alerts",
        result="Alert", many=True, params=(*_P, Param("status", enum=(*ALERT_STATUSES, "open"))),
    ),
    _R(
        "POST", "/alerts/evaluate", _alerts_evaluate, "Evaluate the alert rules now; store and deliver what opened",
        result="Alert", many=True,
    ),
    _R("POST", "/alerts/{id}/ack", _alert_ack, "Acknowledge an active alert", result="Alert", params=(_ID,)),
    _R("POST", "/alerts/{id}/resolve", _alert_resolve, "Resolve an open alert", result="Alert", params=(_ID,)),
    _R("GET", "/summary", _summary, "Last 24 h, last 30 d, alerts, recommendations, status", result="Summary"),
    _R(
        "GET", "/services", _services, "Per-service status: healthy, degraded or no_data",
        result="ServiceHealth", many=True,
    ),
)
# fmt: on

"""The analytics HTTP API (Starlette): JSON under ``/api/v1/...`` for every query, an OpenAPI document at
``/api/v1/openapi.json``, bearer-token auth when configured, ``/api/v1/health`` with dependency checks.

Queries are synchronous psycopg calls run in Starlette's thread pool over a small connection pool. Every list
endpoint is paginated (``limit``, capped by ``max_limit``, and ``offset``) and returns
``{"items": [...], "limit", "offset", "window"}``.
"""

from __future__ import annotations

import builtins
import hmac
import json
import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import advice
from .alerts import ALERT_STATUSES, AlertStore, evaluate
from .budgets import PERIODS, SCOPES, Budget, BudgetStore, agent_budget_map
from .config import AnalyticsConfig, default_rules
from .models import to_jsonable
from .openapi import Endpoint, Param, openapi_document
from .queries import COST_KEYS, DEFAULT_LIMIT, TREND_METRICS, Analytics, Thresholds, trend_of, trend_points
from .session import UnknownNameError, check_known, connect
from .summary import overall_status, service_health, summary
from .window import GRANULARITIES, Filters, TimeWindow

__all__ = ["API_PREFIX", "AnalyticsAPI", "ConnectionPool"]

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"
DEFAULT_POOL_SIZE = 4
# The health check calls the database degraded above this round-trip latency.
DEGRADED_DB_LATENCY_MS = 250.0
_LOGGER = logging.getLogger("otel_metrics.analytics")


class ConnectionPool:
    """A few reusable autocommit connections; a broken one is dropped and replaced on next use."""

    def __init__(self, dsn: Callable[[], str], size: int = DEFAULT_POOL_SIZE) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(maxsize=size)
        self._migrated = False

    def acquire(self) -> psycopg.Connection[Any]:
        try:
            conn = self._idle.get_nowait()
            if not conn.closed and not conn.broken:
                return conn
        except queue.Empty:
            pass
        conn = connect(self._dsn(), migrate=not self._migrated)
        self._migrated = True
        return conn

    def release(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class _BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.suggestions = suggestions


@dataclass
class _Args:
    """Query parameters, parsed with errors that name the parameter."""

    request: Request
    max_limit: int

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def list(self, name: str) -> builtins.list[str]:
        return self.request.query_params.getlist(name)

    def number(self, name: str, default: float | None = None) -> float | None:
        text = self.get(name)
        if text is None:
            return default
        try:
            return float(text)
        except ValueError:
            raise _BadRequest(f"{name}: expected a number, got {text!r}") from None

    def integer(self, name: str, default: int) -> int:
        text = self.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise _BadRequest(f"{name}: expected an integer, got {text!r}") from None

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default) or default
        if value not in choices:
            raise _BadRequest(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def window(self, default_hours: float = 24.0) -> TimeWindow:
        try:
            return TimeWindow.parse(
                self.number("hours"), self.get("since"), self.get("until"), default_hours=default_hours
            )
        except ValueError as exc:
            raise _BadRequest(str(exc).replace("--", "")) from None

    def filters(self) -> Filters:
        return Filters(*(self.get(k) for k in ("service", "operation", "tenant", "user", "agent", "model")))

    def page(self) -> tuple[int, int]:
        limit = self.integer("limit", DEFAULT_LIMIT)
        offset = self.integer("offset", 0)
        if limit < 1 or offset < 0:
            raise _BadRequest("limit must be >= 1 and offset >= 0")
        return min(limit, self.max_limit), offset


_WINDOW = (
    Param("hours", "number", "Window: the last N hours"),
    Param("since", description="Window start (ISO 8601 or 12h/7d/2w ago)"),
    Param("until", description="Window end (ISO 8601 or relative)"),
)
_FILTERS = tuple(
    Param(k, description=f"Only this {k}") for k in ("service", "operation", "tenant", "user", "agent", "model")
)
_PAGE = (Param("limit", "integer", "At most this many items"), Param("offset", "integer", "Skip this many items"))
_ID = Param("id", "integer", "Alert id", where="path")


class AnalyticsAPI:
    """The Starlette application. ``dsn`` is called on first use (the embedded server may start lazily);
    ``component_status`` (inside the collector) adds pipelines and queues to the health report."""

    def __init__(
        self,
        dsn: Callable[[], str],
        config: AnalyticsConfig | None = None,
        *,
        component_status: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> None:
        self.config = config or AnalyticsConfig()
        self.pool = ConnectionPool(dsn)
        self._component_status = component_status
        self._started = time.time()
        self._thresholds = Thresholds(self.config.thresholds.slow * 1000.0, self.config.thresholds.very_slow * 1000.0)
        self.endpoints: list[Endpoint] = []
        routes: list[Route] = []

        def add(ep: Endpoint, handler: Callable[[Analytics, _Args, Request], Any], *, db: bool = True) -> None:
            self.endpoints.append(ep)
            routes.append(Route(ep.path, self._wrap(handler, db), methods=[ep.method]))

        p = API_PREFIX
        win, filt, page = _WINDOW, _FILTERS, _PAGE
        add(
            Endpoint(
                "GET", f"{p}/health", "Health: database reachability and latency, pipelines, queues, uptime", None
            ),
            self._health,
            db=False,
        )
        add(Endpoint("GET", f"{p}/openapi.json", "This document", None), self._openapi, db=False)
        add(
            Endpoint(
                "GET",
                f"{p}/performance",
                "Calls, latency percentiles, error rate, slow counts",
                "OperationPerformance",
                True,
                (*win, *filt, *page, Param("group_by", enum=("operation", "service"))),
            ),
            self._performance,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/timeseries",
                "Time series per hour/day/week/month",
                "TimeBucket",
                True,
                (*win, *filt, Param("granularity", enum=GRANULARITIES)),
            ),
            self._timeseries,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/agents",
                "Per agent or role: tasks, success, latency, tokens, cost, budget, quality",
                "AgentStats",
                True,
                (*win, *filt, *page, Param("by", enum=("agent", "role"))),
            ),
            self._agents,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/users",
                "Per user: requests, successes, avg duration, first/last seen",
                "UserActivity",
                True,
                (*win, *filt, *page),
            ),
            self._users,
        )
        add(
            Endpoint("GET", f"{p}/usage/operations", "Most used operations", "UsagePoint", True, (*win, *filt, *page)),
            self._top_operations,
        )
        add(
            Endpoint("GET", f"{p}/usage/hourly", "Calls per hour of day (UTC)", "UsagePoint", True, (*win, *filt)),
            self._hourly,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/percentiles",
                "Distribution of duration, cost, tokens, quality or an attribute",
                "PercentileSummary",
                False,
                (*win, *filt, Param("field")),
            ),
            self._percentiles,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/trends",
                "Least-squares trends with r², p-value and verdict",
                "Trend",
                True,
                (
                    *win,
                    *filt,
                    Param("granularity", enum=GRANULARITIES),
                    Param("metric", enum=tuple(TREND_METRICS), repeated=True),
                ),
            ),
            self._trends,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/outliers",
                "Spans by z-score within their operation",
                "Outlier",
                True,
                (*win, *filt, *page, Param("metric", enum=("duration", "cost")), Param("threshold", "number")),
            ),
            self._outliers,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/costs",
                "Cost breakdown",
                "CostRow",
                True,
                (*win, *filt, *page, Param("by", enum=tuple(COST_KEYS))),
            ),
            self._costs,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/costs/projection",
                "Month-to-date, daily burn, month-end projection",
                "CostProjection",
                False,
                filt,
            ),
            self._projection,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/costs/correlation/{{correlation_id}}",
                "Whole cost of one request",
                "CorrelationCost",
                False,
                (Param("correlation_id", where="path"),),
            ),
            self._correlation,
        )
        add(
            Endpoint("GET", f"{p}/budgets", "Budgets with spend, utilization and status", "BudgetStatus", True),
            self._budgets,
        )
        add(
            Endpoint("PUT", f"{p}/budgets", "Create or replace a budget", "BudgetStatus", False, body="Budget"),
            self._budget_put,
        )
        add(
            Endpoint(
                "DELETE",
                f"{p}/budgets/{{scope}}/{{name}}/{{period}}",
                "Delete a budget",
                None,
                False,
                (Param("scope", where="path"), Param("name", where="path"), Param("period", where="path")),
            ),
            self._budget_delete,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/recommendations",
                "Reduce budget, pause, increase capacity, review",
                "Recommendation",
                True,
                (*win, *filt),
            ),
            self._recommendations,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/insights",
                "Fastest, cheapest, best agents; peak hours; degrading operations",
                "Insight",
                True,
                (*win, *filt),
            ),
            self._insights,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/business-value",
                "Savings and ROI from a baseline",
                "BusinessValue",
                False,
                (
                    *win,
                    *filt,
                    Param("minutes_saved", "number", required=True),
                    Param("hourly_rate", "number", required=True),
                ),
            ),
            self._business_value,
        )
        add(
            Endpoint(
                "GET",
                f"{p}/alerts",
                "Stored alerts",
                "Alert",
                True,
                (*page, Param("status", enum=(*ALERT_STATUSES, "open"))),
            ),
            self._alerts,
        )
        add(
            Endpoint("POST", f"{p}/alerts/evaluate", "Evaluate the alert rules now", "Alert", True),
            self._alerts_evaluate,
        )
        add(
            Endpoint("POST", f"{p}/alerts/{{id}}/ack", "Acknowledge an active alert", "Alert", False, (_ID,)),
            self._alert_ack,
        )
        add(
            Endpoint("POST", f"{p}/alerts/{{id}}/resolve", "Resolve an open alert", "Alert", False, (_ID,)),
            self._alert_resolve,
        )
        add(
            Endpoint("GET", f"{p}/summary", "Last 24 h, last 30 d, alerts, recommendations, status", "Summary"),
            self._summary,
        )
        add(
            Endpoint("GET", f"{p}/services", "Per-service status: healthy, degraded or no_data", "ServiceHealth", True),
            self._services,
        )
        self.app = Starlette(routes=routes)

    # -- plumbing ------------------------------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        token = self.config.token
        if not token or request.url.path in (f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json"):
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def _wrap(self, handler: Callable[[Analytics, _Args, Request], Any], db: bool) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            if not self._authorised(request):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="otel-metrics"'},
                )
            args = _Args(request, self.config.max_limit)
            body: Any = None
            if request.method in ("PUT", "POST"):
                raw = await request.body()
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        return JSONResponse({"error": "body: expected JSON"}, 400)
            request.state.body = body
            try:
                if not db:
                    result = await handler(None, args, request)  # type: ignore[arg-type]
                else:
                    result = await run_in_threadpool(self._call, handler, args, request)
            except UnknownNameError as exc:
                return JSONResponse({"error": str(exc), "suggestions": exc.suggestions}, 400)
            except _BadRequest as exc:
                payload: dict[str, Any] = {"error": str(exc)}
                if exc.suggestions is not None:
                    payload["suggestions"] = exc.suggestions
                return JSONResponse(payload, exc.status)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            except psycopg.OperationalError as exc:
                _LOGGER.warning("analytics API: database unavailable: %s", exc)
                return JSONResponse({"error": "database unavailable"}, 503)
            if isinstance(result, Response):
                return result
            return JSONResponse(to_jsonable(result))

        return endpoint

    def _call(self, handler: Callable[[Analytics, _Args, Request], Any], args: _Args, request: Request) -> Any:
        conn = self.pool.acquire()
        try:
            return handler(Analytics(conn, self._thresholds), args, request)
        finally:
            self.pool.release(conn)

    @staticmethod
    def _checked(a: Analytics, args: _Args) -> Filters:
        filters = args.filters()
        check_known("service", filters.service, a.services())
        return filters

    @staticmethod
    def _many(
        items: list[Any],
        args: _Args | None = None,
        window: TimeWindow | None = None,
        page: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"items": items}
        if page is not None:
            out["limit"], out["offset"] = page
        if window is not None:
            out["window"] = {
                "start": window.start,
                "end": window.end,
                "source": "rollup" if window.uses_rollups else "raw",
            }
        return out

    # -- handlers ------------------------------------------------------------------------------------------
    async def _openapi(self, a: Analytics, args: _Args, request: Request) -> Any:
        return openapi_document(
            self.endpoints, title="otel-metrics analytics", version=API_VERSION, auth=bool(self.config.token)
        )

    async def _health(self, a: Analytics, args: _Args, request: Request) -> Response:
        def check() -> dict[str, Any]:
            try:
                conn = self.pool.acquire()
                try:
                    latency = Analytics(conn).ping()
                finally:
                    self.pool.release(conn)
                status = "healthy" if latency < DEGRADED_DB_LATENCY_MS else "degraded"
                return {"status": status, "latency_ms": round(latency, 3)}
            except Exception as exc:  # any failure to reach the database is what this check reports
                return {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}".strip()}

        database = await run_in_threadpool(check)
        components = dict(self._component_status()) if self._component_status else {}
        pipelines = {k: dict(v) for k, v in components.items() if k.startswith("pipeline/")}
        queues = {
            k: v.get("queue_size")
            for k, v in components.items()
            if isinstance(v, Mapping) and v.get("queue_size") is not None
        }
        healthy = database["status"] == "healthy" and all(p.get("healthy", True) for p in pipelines.values())
        body = {
            "status": "healthy" if healthy else "degraded",
            "uptime_s": round(time.time() - self._started, 3),
            "time": datetime.now(UTC),
            "checks": {"database": database, "pipelines": pipelines, "queues": queues},
        }
        return JSONResponse(to_jsonable(body), 200 if healthy else 503)

    def _performance(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        group_by = args.choice("group_by", "operation", ("operation", "service"))
        items = a.performance(window, self._checked(a, args), group_by=group_by, limit=page[0], offset=page[1])
        return self._many(items, window=window, page=page)

    def _timeseries(self, a: Analytics, args: _Args, request: Request) -> Any:
        window = args.window()
        granularity = args.choice("granularity", "hour", GRANULARITIES)
        return self._many(a.timeseries(window, self._checked(a, args), granularity), window=window)

    def _agents(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        by = args.choice("by", "agent", ("agent", "role"))
        budgets = agent_budget_map(BudgetStore(a.conn).status())
        items = a.agents(window, self._checked(a, args), by=by, budgets=budgets, limit=page[0], offset=page[1])
        return self._many(items, window=window, page=page)

    def _users(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        filters = self._checked(a, args)
        out = self._many(a.users(window, filters, limit=page[0], offset=page[1]), window=window, page=page)
        out["active_users"] = a.active_users(window, filters)
        return out

    def _top_operations(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        return self._many(a.top_operations(window, self._checked(a, args), page[0]), window=window, page=page)

    def _hourly(self, a: Analytics, args: _Args, request: Request) -> Any:
        window = args.window()
        return self._many(a.hourly_pattern(window, self._checked(a, args)), window=window)

    def _percentiles(self, a: Analytics, args: _Args, request: Request) -> Any:
        return a.percentiles(args.window(), self._checked(a, args), args.get("field", "duration") or "duration")

    def _trends(self, a: Analytics, args: _Args, request: Request) -> Any:
        window = args.window(default_hours=24.0 * 7)
        granularity = args.choice("granularity", "day", GRANULARITIES)
        metrics = args.list("metric") or list(TREND_METRICS)
        return self._many(a.trends(window, self._checked(a, args), granularity, metrics), window=window)

    def _outliers(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        items = a.outliers(
            window,
            self._checked(a, args),
            metric=args.get("metric", "duration") or "duration",
            threshold=args.number("threshold", 3.0) or 3.0,
            limit=page[0],
        )
        return self._many(items, window=window, page=page)

    def _costs(self, a: Analytics, args: _Args, request: Request) -> Any:
        window, page = args.window(), args.page()
        by = args.choice("by", "model", tuple(COST_KEYS))
        items = a.costs(window, self._checked(a, args), by=by, limit=page[0], offset=page[1])
        return self._many(items, window=window, page=page)

    def _projection(self, a: Analytics, args: _Args, request: Request) -> Any:
        return a.cost_projection(self._checked(a, args))

    def _correlation(self, a: Analytics, args: _Args, request: Request) -> Any:
        cid = request.path_params["correlation_id"]
        found = a.correlation_cost(cid)
        if found is None:
            raise _BadRequest(f"no spans with correlation id {cid!r}", 404)
        return found

    def _budgets(self, a: Analytics, args: _Args, request: Request) -> Any:
        return self._many(BudgetStore(a.conn).status())

    def _budget_put(self, a: Analytics, args: _Args, request: Request) -> Any:
        body = request.state.body
        if not isinstance(body, dict):
            raise _BadRequest("body: expected a JSON object with scope, name, period, amount_usd")
        allowed = {"scope", "name", "period", "amount_usd", "warning_ratio", "critical_ratio"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _BadRequest(f"body: unknown key(s) {unknown}; expected some of {sorted(allowed)}")
        try:
            budget = Budget(
                str(body.get("scope", "")),
                str(body.get("name", "")),
                str(body.get("period", "month")),
                float(body.get("amount_usd", -1)),
                float(body.get("warning_ratio", 0.8)),
                float(body.get("critical_ratio", 1.0)),
            )
        except (TypeError, ValueError):
            raise _BadRequest("body: amount_usd, warning_ratio and critical_ratio must be numbers") from None
        errors = budget.validate()
        if errors:
            raise _BadRequest("; ".join(errors))
        store = BudgetStore(a.conn)
        store.set(budget)
        return next(
            s for s in store.status() if (s.scope, s.name, s.period) == (budget.scope, budget.name, budget.period)
        )

    def _budget_delete(self, a: Analytics, args: _Args, request: Request) -> Any:
        scope, name, period = (request.path_params[k] for k in ("scope", "name", "period"))
        if scope not in SCOPES or period not in PERIODS:
            raise _BadRequest(f"expected scope in {list(SCOPES)} and period in {list(PERIODS)}")
        if not BudgetStore(a.conn).delete(scope, name, period):
            raise _BadRequest(f"no budget {scope}/{name}/{period}", 404)
        return {"deleted": f"{scope}/{name}/{period}"}

    def _recommendations(self, a: Analytics, args: _Args, request: Request) -> Any:
        window = args.window(default_hours=24.0 * 30)
        now = datetime.now(UTC)
        budgets = BudgetStore(a.conn).status(now)
        agents = a.agents(window, self._checked(a, args), budgets=agent_budget_map(budgets))
        return self._many(advice.recommendations(agents, budgets, now), window=window)

    def _insights(self, a: Analytics, args: _Args, request: Request) -> Any:
        window = args.window(default_hours=24.0 * 7)
        filters = self._checked(a, args)
        trends = {}
        for key, series in a.operation_series(window, filters, "day").items():
            xs, ys = trend_points(series, window.start, "day", "avg_ms")
            trends[key] = trend_of("avg_ms", xs, ys)
        items = advice.insights(a.agent_operations(window, filters), a.hourly_pattern(window, filters), trends)
        return self._many(items, window=window)

    def _business_value(self, a: Analytics, args: _Args, request: Request) -> Any:
        minutes, rate = args.number("minutes_saved"), args.number("hourly_rate")
        if minutes is None or rate is None:
            raise _BadRequest("minutes_saved and hourly_rate are required")
        window = args.window(default_hours=24.0 * 30)
        filters = self._checked(a, args)
        perf = a.performance(window, filters, group_by="service", limit=10_000)
        tasks = sum(p.calls - p.errors for p in perf)
        return advice.business_value(tasks, a.total_cost(window, filters), minutes, rate)

    def _alerts(self, a: Analytics, args: _Args, request: Request) -> Any:
        page = args.page()
        status = args.get("status")
        return self._many(AlertStore(a.conn).list(status, limit=page[0], offset=page[1]), page=page)

    def _alerts_evaluate(self, a: Analytics, args: _Args, request: Request) -> Any:
        rules = self.config.alerts.rules or default_rules()
        opened, _ = AlertStore(a.conn).apply(evaluate(a, rules), [r.name for r in rules])
        return self._many(opened)

    def _alert_ack(self, a: Analytics, args: _Args, request: Request) -> Any:
        alert_id = _path_id(request)
        found = AlertStore(a.conn).acknowledge(
            alert_id, (request.state.body or {}).get("by") if isinstance(request.state.body, dict) else None
        )
        if found is None:
            raise _BadRequest(f"no active alert with id {alert_id}", 404)
        return found

    def _alert_resolve(self, a: Analytics, args: _Args, request: Request) -> Any:
        alert_id = _path_id(request)
        found = AlertStore(a.conn).resolve(alert_id)
        if found is None:
            raise _BadRequest(f"no open alert with id {alert_id}", 404)
        return found

    def _summary(self, a: Analytics, args: _Args, request: Request) -> Any:
        return summary(a)

    def _services(self, a: Analytics, args: _Args, request: Request) -> Any:
        services = service_health(a)
        out = self._many(services)
        out["status"] = overall_status(services)
        return out


def _path_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise _BadRequest(f"id: expected an integer, got {request.path_params['id']!r}") from None

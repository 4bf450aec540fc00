"""The web UI's pages (server-rendered Jinja2 templates) and its changes (acknowledge, resolve an alert; set a
budget).

Pages read through the API's connection pool in Starlette's thread pool, like the API; a bad parameter renders
the page's error with the parameter's name (status 400), an unreachable database a 503 page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ...confighttp import BodyTooLarge, read_body
from ..alerts import AlertStore
from ..api import MAX_BODY_BYTES
from ..budgets import PERIODS, SCOPES, BudgetStore
from ..config import AnalyticsConfig
from ..models import to_jsonable
from ..params import ApiError
from ..queries import Analytics
from ..routes import budget_from_body
from ..routing import ServingApi
from ..traces import read_span, read_timeline, search_traces
from ..window import FILTER_NAMES
from . import format as fmt
from .auth import authorised, challenge, refuse_change
from .params import TRACE_PARAMS, page_args, query_string, trace_page, trace_query
from .trace_api import DEFAULT_TRACE_LIMIT
from .views import COST_DIMENSIONS, cost_view, request_total, service_series

__all__ = ["WINDOWS", "UIPages"]

HERE = Path(__file__).parent
# The window choices offered on every page (hours); any other ?hours= or since/until works too.
WINDOWS = ((1.0, "1 h"), (6.0, "6 h"), (24.0, "24 h"), (168.0, "7 d"), (720.0, "30 d"))
_LOGGER = logging.getLogger("otel_metrics.analytics")

Build = Callable[[Analytics, Request], dict[str, Any]]


@dataclass(frozen=True)
class _Page:
    template: str
    build: Build


class UIPages:
    """The pages' routes; they read through the API they are served with (``bind``), its pool and settings."""

    def __init__(self, config: AnalyticsConfig) -> None:
        self.config = config
        self._api: ServingApi | None = None
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        fmt.install(self.templates.env)

    def bind(self, api: ServingApi) -> None:
        self._api = api

    def routes(self) -> list[BaseRoute]:
        pages = {
            "/": _Page("overview.html", self._overview),
            "/traces": _Page("traces.html", self._traces),
            "/traces/{trace_id}": _Page("trace.html", self._trace),
            "/costs": _Page("costs.html", self._costs),
            "/alerts": _Page("alerts.html", self._alerts),
        }
        routes: list[BaseRoute] = [Route(path, self._serve(page), methods=["GET"]) for path, page in pages.items()]
        routes += [
            Route("/ui/alerts/{id:int}/{action}", self._change, methods=["POST"]),
            Route("/ui/budgets", self._set_budget, methods=["POST"]),
            Route("/ui/traces/{trace_id}/spans/{span_id}", self._span, methods=["GET"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
        return routes

    # -- plumbing ------------------------------------------------------------------------------------------
    def _with_analytics(self, build: Build, request: Request) -> dict[str, Any]:
        if self._api is None:
            raise RuntimeError("UIPages.bind(api) was not called")
        return self._api.run_with_analytics(lambda a: build(a, request))

    def _serve(self, page: _Page) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not authorised(request, self.config.token):
                return challenge()
            params = dict(request.query_params)
            base = {"params": params, "path": request.url.path, "windows": WINDOWS, "qs": query_string}
            try:
                context = await run_in_threadpool(self._with_analytics, page.build, request)
            except LookupError as exc:
                return self._error(request, base, str(exc.args[0]), 404)
            except ValueError as exc:
                return self._error(request, base, str(exc), 400)
            except psycopg.DataError as exc:  # a value the checks let through; still the client's
                return self._error(request, base, f"A value the database cannot take: {exc.diag.message_primary}", 400)
            except psycopg.OperationalError as exc:
                _LOGGER.warning("analytics UI: database unavailable: %s", exc)
                return self._error(request, base, "The database is unavailable; try again shortly.", 503)
            return self.templates.TemplateResponse(request, page.template, {**base, **context})

        return endpoint

    def _error(self, request: Request, base: dict[str, Any], message: str, status: int) -> Response:
        return self.templates.TemplateResponse(
            request, "error.html", {**base, "message": message, "status": status}, status_code=status
        )

    async def _span(self, request: Request) -> Response:
        """One span's details for the trace page's panel (fetched when a span is selected)."""
        if not authorised(request, self.config.token):
            return challenge()
        trace_id, span_id = request.path_params["trace_id"], request.path_params["span_id"]

        def read(a: Analytics, _: Request) -> dict[str, Any]:
            return {"span": read_span(a.conn, trace_id, span_id)}

        try:
            found = (await run_in_threadpool(self._with_analytics, read, request))["span"]
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except psycopg.OperationalError:
            return JSONResponse({"error": "database unavailable"}, 503)
        if found is None:
            return JSONResponse({"error": f"no span {span_id!r} in trace {trace_id!r}"}, 404)
        return JSONResponse(to_jsonable(found))

    async def _change(self, request: Request) -> Response:
        refused = refuse_change(request, self.config.token)
        if refused is not None:
            return refused
        alert_id, action = int(request.path_params["id"]), request.path_params["action"]
        if alert_id > 2**63 - 1:  # beyond bigint: no such alert
            return JSONResponse({"error": f"no alert with id {alert_id}"}, 404)
        if action not in ("ack", "resolve"):
            return JSONResponse({"error": f"action: expected ack or resolve, got {action!r}"}, 404)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "body: expected JSON"}, 400)
        by = body.get("by") if isinstance(body, dict) else None

        def apply(a: Analytics, _: Request) -> dict[str, Any]:
            store = AlertStore(a.conn)
            found = store.acknowledge(alert_id, by) if action == "ack" else store.resolve(alert_id)
            return {"alert": found}

        try:
            result = await run_in_threadpool(self._with_analytics, apply, request)
        except psycopg.OperationalError:
            return JSONResponse({"error": "database unavailable"}, 503)
        if result["alert"] is None:
            state = "active" if action == "ack" else "open"
            return JSONResponse({"error": f"no {state} alert with id {alert_id}"}, 404)
        return JSONResponse(to_jsonable(result["alert"]))

    async def _set_budget(self, request: Request) -> Response:
        """Create or replace a budget: the body ``PUT /api/v1/budgets`` takes, under the pages' change guard."""
        refused = refuse_change(request, self.config.token)
        if refused is not None:
            return refused
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse({"error": f"body: larger than {MAX_BODY_BYTES} bytes"}, 413)
        try:
            budget = budget_from_body(json.loads(raw or b"null"))
        except ApiError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except ValueError:
            return JSONResponse({"error": "body: expected JSON"}, 400)

        def apply(a: Analytics, _: Request) -> dict[str, Any]:
            store = BudgetStore(a.conn)
            store.set(budget)
            key = (budget.scope, budget.name, budget.period)
            return {"budget": next(s for s in store.status() if (s.scope, s.name, s.period) == key)}

        try:
            result = await run_in_threadpool(self._with_analytics, apply, request)
        except psycopg.OperationalError:
            return JSONResponse({"error": "database unavailable"}, 503)
        return JSONResponse(to_jsonable(result["budget"]))

    # -- pages ---------------------------------------------------------------------------------------------
    def _overview(self, a: Analytics, request: Request) -> dict[str, Any]:
        args = page_args(request.query_params, self.config.max_limit)
        window, filters = args.window(24.0), args.filters()
        services = a.services()
        series, performance = service_series(a, window, filters)
        store = AlertStore(a.conn)
        return {
            "title": "Overview",
            "window": window,
            "services": services,
            "series": series,
            "performance": performance,
            "request_total": request_total(performance, filters),
            "seconds": window.duration.total_seconds(),
            "alerts": store.list("open", limit=10),
            "alert_counts": store.counts(),
            "budgets": BudgetStore(a.conn).status(),
            "filter_names": ("service", "tenant", "model", "agent"),
        }

    def _traces(self, a: Analytics, request: Request) -> dict[str, Any]:
        args = page_args(request.query_params, self.config.max_limit)
        q = trace_query(args)
        limit, offset = trace_page(args, DEFAULT_TRACE_LIMIT)
        # One more than a page tells whether there is a next page.
        found = search_traces(a.conn, q, limit=limit + 1, offset=offset)
        return {
            "title": "Traces",
            "query": q,
            "traces": found[:limit],
            "limit": limit,
            "offset": offset,
            "more": len(found) > limit,
            "services": a.services(),
            "filter_names": FILTER_NAMES,
            "trace_params": TRACE_PARAMS,
        }

    def _trace(self, a: Analytics, request: Request) -> dict[str, Any]:
        trace_id = request.path_params["trace_id"]
        trace = read_timeline(a.conn, trace_id)
        if trace is None:
            raise LookupError(f"no spans with trace id {trace_id!r} (not received, or past retention)")
        services = sorted({s.service for s in trace.spans})
        index = {s: i for i, s in enumerate(services)}
        total = max(trace.summary.duration_ms, 0.001)
        # One compact array per span, drawn by the page's script only where the list is scrolled to: a 5,000-span
        # trace is a few hundred kilobytes of JSON and a screenful of rows, not 5,000 rows of markup.
        rows = [
            [
                s.span_id,
                min(s.depth, 30),
                s.name,
                index[s.service],
                1 if s.error else 0,
                fmt.usd(s.cost_usd) if s.cost_usd else "",
                round(s.offset_ms / total * 100, 3),
                round(max(s.duration_ms / total * 100, 0.15), 3),
                fmt.duration(s.duration_ms),
                round(s.offset_ms, 3),
            ]
            for s in trace.spans
        ]
        return {
            "title": f"Trace {trace.summary.root_name}",
            "trace": trace,
            "service_index": index,
            "timeline": {"services": services, "rows": rows},
        }

    def _costs(self, a: Analytics, request: Request) -> dict[str, Any]:
        args = page_args(request.query_params, self.config.max_limit)
        window, filters = args.window(24.0 * 7), args.filters()
        by = args.get("by") or "model"
        return {
            "title": "Costs",
            "window": window,
            "view": cost_view(a, window, filters, by),
            "dimensions": tuple(COST_DIMENSIONS),
            "services": a.services(),
            "filter_names": ("service", "tenant", "model", "agent"),
        }

    def _alerts(self, a: Analytics, request: Request) -> dict[str, Any]:
        status = request.query_params.get("status") or "open"
        if status not in ("open", "active", "acknowledged", "resolved", "all"):
            raise ValueError(f"status: expected open, active, acknowledged, resolved or all, got {status!r}")
        store = AlertStore(a.conn)
        return {
            "title": "Alerts and budgets",
            "status": status,
            "alerts": store.list(None if status == "all" else status, limit=200),
            "alert_counts": store.counts(),
            "budgets": BudgetStore(a.conn).status(),
            "budget_scopes": tuple(SCOPES),
            "budget_periods": PERIODS,
        }

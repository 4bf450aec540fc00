"""The analytics HTTP API (Starlette): JSON under ``/api/v1/...`` for every query, an OpenAPI document at
``/api/v1/openapi.json``, bearer-token auth when configured, ``/api/v1/health`` with dependency checks.

Routing and the OpenAPI document are both generated from route specs (``routes.API_ROUTES`` and any specs a caller
adds). Queries are synchronous psycopg calls run in Starlette's thread pool over a capped connection pool
(``pool``). Every list endpoint is paginated (``limit``, capped by ``max_limit``, and ``offset``) and returns
``{"items": [...], "limit", "offset", "window"}``.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from collector.confighttp import BodyTooLarge, ServerLimits, read_body

from .compose import thresholds_of
from .config import AnalyticsConfig
from .hosts import HostCheck, allowed_hosts
from .models import to_jsonable
from .openapi import openapi_document
from .params import ApiError, QueryArgs
from .pool import ConnectionPool
from .queries import Analytics
from .routes import API_ROUTES
from .routing import Call, RouteSpec
from .session import UnknownNameError

__all__ = ["API_LIMITS", "API_PREFIX", "API_VERSION", "MAX_BODY_BYTES", "AnalyticsAPI"]

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"
# Request bodies (a budget, an acknowledgement) are a few hundred bytes; anything far larger is refused (413).
MAX_BODY_BYTES = 64 * 1024
# The listener's bounds for the API (bodies as above; the pages and the API are a handful of clients).
API_LIMITS = ServerLimits(max_request_body_size=MAX_BODY_BYTES, max_request_header_size=16 * 1024, max_connections=64)
_LOGGER = logging.getLogger("otel_metrics.analytics")
_T = TypeVar("_T")


class AnalyticsAPI:
    """The Starlette application. ``dsn`` is called on first use (the embedded server may start lazily);
    ``component_status`` (inside the collector) adds pipelines and queues to the health report. ``routes`` are the
    specs served under ``/api/v1`` (default: every analytics route; pass more to add some), ``schemas`` extra
    OpenAPI component schemas they name, ``extra_routes`` plain Starlette routes served next to the API."""

    def __init__(
        self,
        dsn: Callable[[], str],
        config: AnalyticsConfig | None = None,
        *,
        component_status: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
        routes: Sequence[RouteSpec] = API_ROUTES,
        schemas: Mapping[str, Any] | None = None,
        extra_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.config = config or AnalyticsConfig()
        self.pool = ConnectionPool(dsn)
        self._component_status = component_status
        self.started = time.time()
        self.thresholds = thresholds_of(self.config)
        self.routes = tuple(routes)
        self._schemas = dict(schemas or {})
        starlette_routes: list[BaseRoute] = [
            Route(API_PREFIX + spec.path, self._endpoint(spec), methods=[spec.method]) for spec in self.routes
        ]
        self.app = HostCheck(Starlette(routes=[*starlette_routes, *extra_routes]), allowed_hosts(self.config))

    # -- what handlers use ---------------------------------------------------------------------------------
    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        return self._component_status() if self._component_status else {}

    def openapi(self) -> dict[str, Any]:
        return openapi_document(
            self.routes,
            prefix=API_PREFIX,
            title="otel-metrics analytics",
            version=API_VERSION,
            auth=bool(self.config.token),
            schemas=self._schemas,
        )

    def run_with_analytics(self, fn: Callable[[Analytics], _T]) -> _T:
        """``fn`` over a pooled connection (blocking: call from a worker thread)."""
        with self.pool.connection() as conn:
            return fn(Analytics(conn, self.thresholds))

    # -- plumbing ------------------------------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        token = self.config.token
        if not token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    async def _body(self, request: Request) -> Any:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            # Browsers send text/plain and form bodies cross-site without asking; JSON needs a CORS preflight
            # this server never grants, so requiring it closes cross-site request forgery.
            raise ApiError("this route changes state and takes Content-Type: application/json", 415)
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            raise ApiError(f"body: larger than {MAX_BODY_BYTES} bytes", 413) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError("body: expected JSON") from None

    def _endpoint(self, spec: RouteSpec) -> Callable[[Request], Any]:
        on_loop = inspect.iscoroutinefunction(spec.handler)

        async def endpoint(request: Request) -> Response:
            if spec.auth and not self._authorised(request):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="otel-metrics"'},
                )
            try:
                body = await self._body(request) if spec.mutating else None
                call = Call(request, QueryArgs(request.query_params, self.config.max_limit), body, self)
                if on_loop:
                    result = await spec.handler(call)
                else:
                    result = await run_in_threadpool(self._call_bound, spec, call)
            except UnknownNameError as exc:
                return JSONResponse({"error": str(exc), "suggestions": exc.suggestions}, 400)
            except ApiError as exc:
                payload: dict[str, Any] = {"error": str(exc)}
                if exc.suggestions is not None:
                    payload["suggestions"] = exc.suggestions
                return JSONResponse(payload, exc.status)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            except psycopg.DataError as exc:  # a value the checks above let through; still the client's
                _LOGGER.info("analytics API: %s %s: value refused by the database: %s", spec.method, spec.path, exc)
                return JSONResponse({"error": f"a value the database cannot take: {exc.diag.message_primary}"}, 400)
            except psycopg.OperationalError as exc:  # also no free connection in time (PoolTimeout)
                _LOGGER.warning("analytics API: database unavailable: %s", exc)
                return JSONResponse({"error": "database unavailable"}, 503, headers={"Retry-After": "1"})
            if isinstance(result, Response):
                return result
            return JSONResponse(to_jsonable(result))

        return endpoint

    def _call_bound(self, spec: RouteSpec, call: Call) -> Any:
        def bound(a: Analytics) -> Any:
            call.bound = a
            return spec.handler(call)

        return self.run_with_analytics(bound)

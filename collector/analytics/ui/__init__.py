"""The analytics web UI: server-rendered pages (overview, traces, trace, costs, alerts and budgets) served by the
``analytics`` extension next to its JSON API, and the API's trace endpoints. Charts are drawn by the vendored uPlot
(``static/VENDOR.md``); nothing is fetched at run time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..api import AnalyticsAPI
from ..config import AnalyticsConfig
from ..routes import API_ROUTES
from .links import trace_url, ui_base_url
from .pages import UIPages
from .trace_api import TRACE_ROUTES, TRACE_SCHEMAS

__all__ = ["TRACE_ROUTES", "TRACE_SCHEMAS", "analytics_app", "trace_url", "ui_base_url"]


def analytics_app(
    dsn: Callable[[], str],
    config: AnalyticsConfig | None = None,
    *,
    component_status: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
) -> AnalyticsAPI:
    """The analytics API with the trace endpoints, and the UI's pages next to it (one app, one port, one token)."""
    config = config or AnalyticsConfig()
    pages = UIPages(config)
    api = AnalyticsAPI(
        dsn,
        config,
        component_status=component_status,
        routes=(*API_ROUTES, *TRACE_ROUTES),
        schemas=TRACE_SCHEMAS,
        extra_routes=pages.routes(),
    )
    pages.bind(api)
    return api

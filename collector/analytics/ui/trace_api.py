"""The trace endpoints of the JSON API (``/api/v1/traces``, ``/api/v1/traces/{trace_id}``): their specs for the
route table and the OpenAPI document, and their handlers (called by the API's wrapper: auth, thread pool, errors)."""

from __future__ import annotations

from typing import Any

from ..openapi import schema_of
from ..params import ApiError
from ..routing import Call, Param, RouteSpec
from ..traces import SpanView, TraceDetail, TraceSummary, read_trace, search_traces
from ..window import FILTER_NAMES
from .params import trace_page, trace_query

__all__ = ["DEFAULT_TRACE_LIMIT", "TRACE_ROUTES", "TRACE_SCHEMAS"]

DEFAULT_TRACE_LIMIT = 50

_SEARCH_PARAMS = (
    Param("hours", "number", "Window: the last N hours (default 1; ignored with trace_id or correlation_id)"),
    Param("since", description="Window start (ISO 8601 or 12h/7d/2w ago)"),
    Param("until", description="Window end (ISO 8601 or relative)"),
    *(Param(k, description=f"Only traces with a span of this {k}") for k in FILTER_NAMES),
    Param("correlation_id", description="Only traces with a span of this correlation id"),
    Param("trace_id", description="This trace (32 hex digits)"),
    Param("errors", "boolean", "Only traces with an error span (matching the filters)"),
    Param("min_duration_ms", "number", "Trace duration at least this (ms)"),
    Param("max_duration_ms", "number", "Trace duration at most this (ms)"),
    Param("min_cost_usd", "number", "Trace cost at least this (USD)"),
    Param("max_cost_usd", "number", "Trace cost at most this (USD)"),
    Param("limit", "integer", "At most this many items"),
    Param("offset", "integer", "Skip this many items"),
)


def _span_schema() -> dict[str, Any]:
    schema = schema_of(SpanView)
    for name in ("attributes", "resource"):
        schema["properties"][name] = {"type": "object"}
    for name in ("events", "exceptions", "links"):
        schema["properties"][name] = {"type": "array", "items": {"type": "object"}}
    return schema


TRACE_SCHEMAS: dict[str, Any] = {
    "TraceSummary": schema_of(TraceSummary),
    "Span": _span_schema(),
    "TraceDetail": {
        "type": "object",
        "properties": {
            "summary": {"$ref": "#/components/schemas/TraceSummary"},
            "spans": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
            "truncated": {"type": "integer", "description": "spans not listed (beyond the page's limit)"},
            "correlation_ids": {"type": "array", "items": {"type": "string"}},
            "related": {"type": "array", "items": {"$ref": "#/components/schemas/TraceSummary"}},
        },
        "required": [f for f in TraceDetail.__dataclass_fields__],
    },
}


def _search(call: Call) -> Any:
    q = trace_query(call.args)
    limit, offset = trace_page(call.args, DEFAULT_TRACE_LIMIT)
    items = search_traces(call.analytics.conn, q, limit=limit, offset=offset)
    window = None if q.by_id else {"start": q.window.start, "end": q.window.end, "source": "raw"}
    return {"items": items, "limit": limit, "offset": offset, "window": window}


def _one(call: Call) -> Any:
    trace_id = call.path("trace_id")
    found = read_trace(call.analytics.conn, trace_id)
    if found is None:
        raise ApiError(f"no spans with trace id {trace_id!r}", 404)
    return found


TRACE_ROUTES = (
    RouteSpec(
        "GET",
        "/traces",
        _search,
        "Trace search: whole-trace duration, span count, services, cost and tenant, newest first",
        result="TraceSummary",
        many=True,
        params=_SEARCH_PARAMS,
    ),
    RouteSpec(
        "GET",
        "/traces/{trace_id}",
        _one,
        "One trace: spans in tree order with attributes, events, exceptions, resource, tokens and cost;"
        " traces sharing its correlation ids",
        result="TraceDetail",
        params=(Param("trace_id", where="path", description="32 hex digits"),),
    ),
)

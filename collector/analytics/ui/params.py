"""Query parameters shared by the trace JSON endpoints and the pages, parsed with errors that name the parameter.

Pages and the JSON API take the same names (``/traces?correlation_id=…`` and ``/api/v1/traces?correlation_id=…``),
so a page's URL is also its query.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from ..params import MAX_OFFSET, QueryArgs
from ..traces import TraceQuery

__all__ = ["TRACE_PARAMS", "page_args", "query_string", "trace_page", "trace_query"]

# Trace search parameters beyond the window and the filters.
TRACE_PARAMS = (
    "correlation_id",
    "trace_id",
    "errors",
    "min_duration_ms",
    "max_duration_ms",
    "min_cost_usd",
    "max_cost_usd",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def page_args(params: QueryParams, max_limit: int) -> QueryArgs:
    """A page's parameters, checked like the API's (``QueryArgs``); a form's empty fields mean "not given"."""
    return QueryArgs(QueryParams([(k, v) for k, v in params.multi_items() if v.strip()]), max_limit)


def trace_page(args: QueryArgs, default: int) -> tuple[int, int]:
    limit = args.integer("limit", default, low=1, high=2**31 - 1)
    return min(limit, args.max_limit), args.integer("offset", 0, low=0, high=MAX_OFFSET)


def trace_query(args: QueryArgs, default_hours: float = 1.0) -> TraceQuery:
    errors = (args.get("errors") or "").strip().lower()
    if errors not in _TRUE + _FALSE:
        raise ValueError(f"errors: expected true or false, got {errors!r}")
    q = TraceQuery(
        window=args.window(default_hours),
        filters=args.filters(),
        correlation_id=args.get("correlation_id"),
        trace_id=args.get("trace_id"),
        errors_only=errors in _TRUE,
        min_duration_ms=args.number("min_duration_ms"),
        max_duration_ms=args.number("max_duration_ms"),
        min_cost_usd=args.number("min_cost_usd"),
        max_cost_usd=args.number("max_cost_usd"),
    )
    q.validate()
    return q


def query_string(params: Mapping[str, str], **changes: str | int | None) -> str:
    """The page's own parameters with ``changes`` applied (None removes one); empty values are dropped."""
    merged: dict[str, str] = {k: v for k, v in params.items() if v}
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return urlencode(merged)

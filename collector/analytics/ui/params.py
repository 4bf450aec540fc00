"""Query parameters shared by the trace JSON endpoints and the pages, parsed with errors that name the parameter.

Pages and the JSON API take the same names (``/traces?correlation_id=…`` and ``/api/v1/traces?correlation_id=…``),
so a page's URL is also its query.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from ..traces import TraceQuery
from ..window import Filters, TimeWindow

__all__ = [
    "FILTER_NAMES",
    "TRACE_PARAMS",
    "filters_of",
    "number",
    "page_of",
    "query_string",
    "trace_query",
    "window_of",
]

FILTER_NAMES = ("service", "operation", "tenant", "user", "agent", "model")
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
WINDOW_NAMES = ("hours", "since", "until")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value.strip() or None if value is not None else None


def number(params: Mapping[str, str], name: str) -> float | None:
    text = _text(params, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: expected a finite number, got {text!r}")
    return value


def window_of(params: Mapping[str, str], default_hours: float) -> TimeWindow:
    try:
        return TimeWindow.parse(
            number(params, "hours"), _text(params, "since"), _text(params, "until"), default_hours=default_hours
        )
    except ValueError as exc:
        raise ValueError(str(exc).replace("--", "")) from None


def filters_of(params: Mapping[str, str]) -> Filters:
    return Filters(*(_text(params, k) for k in FILTER_NAMES))


def page_of(params: Mapping[str, str], default: int, maximum: int) -> tuple[int, int]:
    values = []
    for name, fallback in (("limit", default), ("offset", 0)):
        text = _text(params, name)
        try:
            values.append(int(text) if text is not None else fallback)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None
    limit, offset = values
    if limit < 1 or offset < 0:
        raise ValueError("limit must be >= 1 and offset >= 0")
    return min(limit, maximum), offset


def trace_query(params: Mapping[str, str], default_hours: float = 1.0) -> TraceQuery:
    errors = (_text(params, "errors") or "").lower()
    if errors not in _TRUE + _FALSE:
        raise ValueError(f"errors: expected true or false, got {errors!r}")
    q = TraceQuery(
        window=window_of(params, default_hours),
        filters=filters_of(params),
        correlation_id=_text(params, "correlation_id"),
        trace_id=_text(params, "trace_id"),
        errors_only=errors in _TRUE,
        min_duration_ms=number(params, "min_duration_ms"),
        max_duration_ms=number(params, "max_duration_ms"),
        min_cost_usd=number(params, "min_cost_usd"),
        max_cost_usd=number(params, "max_cost_usd"),
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

"""The correlation and business span processors with a per-context cache (same classes, same results).

``processors.correlation.CorrelationSpanProcessor`` and ``processors.business.BusinessSpanProcessor`` read W3C
baggage and the context on every span start (~0.7 and ~2.7 µs here). A request starts many spans from the same
parent context object, and contexts are immutable, so the answer for the last context object is kept
and reused
when the next span starts under that very object (identity, not equality). The lookups themselves are the
processors' own pure functions, so behaviour is theirs; only repeated work is skipped.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from processors.business import BusinessSpanProcessor, get_business_attributes
from processors.correlation import CORRELATION_ID_KEY, CorrelationSpanProcessor, get_correlation_id

__all__ = [
    "CachedBusinessSpanProcessor",
    "CachedCorrelationSpanProcessor",
    "ContextAttributesSpanProcessor",
    "context_business_attributes",
    "start_attributes",
]

_MISSING: Any = object()


class LastContext:
    """A one-entry cache keyed by context identity; a tuple swap is atomic under the GIL."""

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry: tuple[Any, Any] = (_MISSING, None)

    def get(self, ctx: Context, compute: Any) -> Any:
        cached_ctx, value = self._entry
        if cached_ctx is ctx:
            return value
        value = compute(ctx)
        self._entry = (ctx, value)
        return value


def _parent(parent_context: Context | None) -> Context:
    return parent_context if parent_context is not None else context_api.get_current()


class CachedCorrelationSpanProcessor(CorrelationSpanProcessor):
    def __init__(self) -> None:
        super().__init__()
        self._last = LastContext()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            correlation_id = self._last.get(_parent(parent_context), get_correlation_id)
            if correlation_id is not None and CORRELATION_ID_KEY not in (span.attributes or {}):
                span.set_attribute(CORRELATION_ID_KEY, correlation_id)
        except Exception:  # never raise into user code: fall back to the uncached processor
            super().on_start(span, parent_context)


def _frozen_business(ctx: Context) -> tuple[dict[str, Any], frozenset[str]]:
    attributes = get_business_attributes(ctx)
    return attributes, frozenset(attributes)


class CachedBusinessSpanProcessor(BusinessSpanProcessor):
    def __init__(self) -> None:
        super().__init__()
        self._last = LastContext()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes, keys = self._last.get(_parent(parent_context), _frozen_business)
            if not attributes:
                return
            existing = span.attributes or {}
            if any(key in existing for key in keys):
                attributes = {k: v for k, v in attributes.items() if k not in existing}
                if not attributes:
                    return
            span.set_attributes(attributes)
        except Exception:
            super().on_start(span, parent_context)


_dims_cache = LastContext()


def context_business_attributes() -> dict[str, Any]:
    """get_business_attributes() of the current context, cached by context identity (do not mutate)."""
    return _dims_cache.get(context_api.get_current(), get_business_attributes)  # type: ignore[no-any-return]


def _start_attributes(ctx: Context) -> dict[str, Any] | None:
    attributes = dict(get_business_attributes(ctx))
    correlation_id = get_correlation_id(ctx)
    if correlation_id is not None:
        attributes[CORRELATION_ID_KEY] = correlation_id
    return attributes or None


_start_cache = LastContext()


def start_attributes(parent: Context) -> dict[str, Any] | None:
    """What the correlation and business processors would add to a span started under ``parent``, so that
    @track_performance can pass it at span creation (one attribute build instead of two later updates; the
    processors then find the keys present and skip). Cached by context identity; do not mutate."""
    return _start_cache.get(parent, _start_attributes)  # type: ignore[no-any-return]


class ContextAttributesSpanProcessor(CachedCorrelationSpanProcessor, CachedBusinessSpanProcessor):
    """Both processors in one: the correlation id and the business attributes of the parent context, set
    with a single ``set_attributes`` (keys already on the span win), one processor call instead of two."""

    def __init__(self) -> None:
        CachedCorrelationSpanProcessor.__init__(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = start_attributes(_parent(parent_context))
            if not attributes:
                return
            existing = span.attributes or {}
            if existing and any(key in existing for key in attributes):
                attributes = {k: v for k, v in attributes.items() if k not in existing}
                if not attributes:
                    return
            span.set_attributes(attributes)
        except Exception:  # fall back to the two uncached processors' behaviour
            CorrelationSpanProcessor.on_start(self, span, parent_context)
            BusinessSpanProcessor.on_start(self, span, parent_context)

"""The correlation and business span processors with a per-context cache (same classes, same results), and
the cheap way our hot paths put attributes on a live span.

``processors.correlation.CorrelationSpanProcessor`` and ``processors.business.BusinessSpanProcessor`` read W3C
baggage and the context on every span start (~0.7 and ~2.7 µs here). A request starts many spans from the same
parent context object, and contexts are immutable, so the answer for the last context object is kept and reused
when the next span starts under that very object (identity, not equality). The lookups themselves are the
processors' own pure functions, so behaviour is theirs; only repeated work is skipped.

Why ``add_missing_attributes`` exists: in opentelemetry-sdk 1.45 every attribute set on a span goes through
``_clean_attribute_value``, whose ``isinstance(x, Sequence)``/``Mapping`` ABC checks cost ~0.4 µs each, so three
attributes cost ~4 µs (a fifth of a whole span). Our attributes are checked once per context instead (keys non-empty
str, values str/bool/int/float, the same checks the SDK makes) and then copied straight into the span's
``BoundedAttributes`` under its lock, which gives exactly what ``span.set_attributes`` would give. Whenever the
SDK's limits could make a difference (attribute count or string length limits reached, a span of another SDK,
an SDK version these internals were not tested on: ``processors._sdk_internals``) the public ``set_attributes``
is used instead.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Span, SpanProcessor

from processors import _sdk_internals
from processors.business import _BAGGAGE_CONTEXT_KEY, _LOCAL_KEY, BusinessSpanProcessor, get_business_attributes
from processors.correlation import CORRELATION_ID_KEY, CorrelationSpanProcessor, get_correlation_id
from processors.sdk import start_hook

__all__ = [
    "OUTCOME",
    "STARTING",
    "SUCCESS",
    "CachedBusinessSpanProcessor",
    "CachedCorrelationSpanProcessor",
    "ContextAttributesSpanProcessor",
    "PreparedAttributes",
    "add_missing_attributes",
    "context_business_attributes",
    "decorated_start_attributes",
    "prepare_attributes",
    "start_attributes",
]

_logger = logging.getLogger(__name__)

OUTCOME = "operation.outcome"
SUCCESS = "success"

_MISSING: Any = object()
# Exact types only: a subclass (an IntEnum, a str subclass) takes the SDK's own path.
_PLAIN_VALUE_TYPES = frozenset({str, bool, int, float})
# The SDK's Tracer makes ``_Span`` (a bare subclass of ``Span``); any other subclass may override set_attributes.
_SDK_SPAN_TYPES = frozenset({Span, getattr(sdk_trace, "_Span", Span)})


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


class LastInputs:
    """A one-entry cache keyed by what the business and correlation lookups read from a context (its baggage and
    local business attributes, by identity): unlike the context itself, those are shared by the contexts of
    nested spans, so a whole request hits. A tuple swap is atomic under the GIL."""

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry: tuple[Any, Any, Any] = (_MISSING, _MISSING, None)

    def get(self, ctx: Context, compute: Any) -> Any:
        # processors.business._context_inputs, written out (this runs two or three times per span)
        bag = ctx.get(_BAGGAGE_CONTEXT_KEY) if _BAGGAGE_CONTEXT_KEY is not None else ctx
        local = ctx.get(_LOCAL_KEY)
        cached_bag, cached_local, value = self._entry
        if cached_bag is bag and cached_local is local:
            return value
        value = compute(ctx)
        self._entry = (bag, local, value)
        return value


class PreparedAttributes:
    """An attribute dict checked once for ``add_missing_attributes``: whether every key and value is one the SDK
    stores unchanged, and the longest string value (compared with the span's length limit). Do not mutate."""

    __slots__ = ("attributes", "longest", "plain")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.plain = all(
            type(key) is str and key and type(value) in _PLAIN_VALUE_TYPES for key, value in attributes.items()
        )
        self.longest = max((len(v) for v in attributes.values() if type(v) is str), default=0)


def prepare_attributes(attributes: dict[str, Any]) -> PreparedAttributes:
    return PreparedAttributes(attributes)


def add_missing_attributes(span: Any, prepared: PreparedAttributes) -> None:
    """Set the attributes of ``prepared`` that ``span`` does not have yet (keys already on the span win), with
    the result ``span.set_attributes`` would give. Never raises (a failure is logged at debug level)."""
    try:
        attributes = prepared.attributes
        bounded = getattr(span, "_attributes", None)
        # Exact types: a subclass may override set_attributes (and isinstance on the SDK's ABCs is slow).
        if (
            _sdk_internals.use_sdk_internals
            and type(bounded) is BoundedAttributes
            and type(span) in _SDK_SPAN_TYPES
            and prepared.plain
        ):
            limit = bounded.max_value_len
            if limit is None or prepared.longest <= limit:
                existing: dict[str, Any] = bounded._dict
                # The locks Span.set_attributes takes; the span's lock also orders this against end(), which
                # makes the attributes immutable under it.
                with span._lock, bounded._lock:
                    maxlen = bounded.maxlen
                    # Room for all of them (an upper bound when some are present): nothing can be dropped.
                    if not bounded._immutable and (maxlen is None or len(existing) + len(attributes) <= maxlen):
                        if not existing or existing.keys().isdisjoint(attributes):
                            existing.update(attributes)
                        else:
                            setdefault = existing.setdefault
                            for key, value in attributes.items():
                                setdefault(key, value)
                        return
        # The SDK's own path: limits apply (oldest attributes dropped, strings truncated); other span types.
        if not span.is_recording():
            return
        current = getattr(span, "attributes", None) or {}
        if current and any(key in current for key in attributes):
            attributes = {k: v for k, v in attributes.items() if k not in current}
        if attributes:
            span.set_attributes(attributes)
    except Exception:  # never raise into the code that started the span
        _logger.debug("setting span attributes failed", exc_info=True)


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


_dims_cache = LastInputs()


def context_business_attributes() -> dict[str, Any]:
    """get_business_attributes() of the current context, cached (LastInputs; do not mutate)."""
    return _dims_cache.get(context_api.get_current(), get_business_attributes)  # type: ignore[no-any-return]


def _start_attributes(ctx: Context) -> dict[str, Any] | None:
    attributes = dict(get_business_attributes(ctx))
    correlation_id = get_correlation_id(ctx)
    if correlation_id is not None:
        attributes[CORRELATION_ID_KEY] = correlation_id
    return attributes or None


_start_cache = LastInputs()


def start_attributes(parent: Context) -> dict[str, Any] | None:
    """What the correlation and business processors add to a span started under ``parent`` (the context's
    business attributes and correlation id). Cached (LastInputs); do not mutate."""
    return _start_cache.get(parent, _start_attributes)  # type: ignore[no-any-return]


def _prepared_start_attributes(ctx: Context) -> PreparedAttributes | None:
    attributes = _start_attributes(ctx)
    return PreparedAttributes(attributes) if attributes else None


def _prepared_decorated_attributes(ctx: Context) -> PreparedAttributes:
    return PreparedAttributes({**(start_attributes(ctx) or {}), OUTCOME: SUCCESS})


_decorated_cache = LastInputs()


def decorated_start_attributes(parent: Context) -> PreparedAttributes:
    """The attributes ``track_performance`` gives a span at its start: the context's (``start_attributes``) and
    ``operation.outcome=success`` (overwritten on failure). Cached (LastInputs); do not mutate."""
    return _decorated_cache.get(parent, _prepared_decorated_attributes)  # type: ignore[no-any-return]


class _Starting(threading.local):
    """``track_performance``'s handshake with ``ContextAttributesSpanProcessor``, per thread. Before starting
    its span the decorator stores the parent context in ``parent``; the processor, seeing a span start under
    that very context object, sets ``decorated_start_attributes`` (the context's attributes and the outcome) in
    its one write and stores the span in ``parent``. The decorator then finds its span there (and clears the
    slot) and skips a second write; when it does not (another provider, a span not sampled), it sets the
    attributes itself."""

    parent: Any = None


STARTING = _Starting()


class ContextAttributesSpanProcessor(CachedCorrelationSpanProcessor, CachedBusinessSpanProcessor):
    """Both processors in one: the correlation id and the business attributes of the parent context, set
    in one go (keys already on the span win), one processor call instead of two. A span ``track_performance``
    is starting gets its ``operation.outcome`` in the same write (``STARTING``).

    With ``inner`` (the processor that enriches and exports), everything else is handed to ``inner``: the SDK
    calls three hooks of every registered processor for every span, so one registered processor instead of two
    saves three Python calls per span."""

    def __init__(self, inner: SpanProcessor | None = None) -> None:
        CachedCorrelationSpanProcessor.__init__(self)
        self._prepared = LastInputs()
        self._inner = inner
        self._inner_on_start = start_hook(inner) if inner is not None else None
        if inner is not None:
            # The SDK calls these on us: give it the inner processor's own methods, no forwarding call between.
            # (_on_ending is an SDK-internal hook, absent from some SDK versions.)
            on_ending = getattr(inner, "_on_ending", None)
            if on_ending is not None:
                self._on_ending = on_ending  # type: ignore[method-assign]
            self.on_end = inner.on_end  # type: ignore[method-assign]

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            ctx = parent_context if parent_context is not None else context_api.get_current()
            starting = STARTING
            if ctx is starting.parent:
                # decorated_start_attributes(ctx), without the call: every decorated span
                add_missing_attributes(span, _decorated_cache.get(ctx, _prepared_decorated_attributes))
                starting.parent = span
            else:
                prepared = self._prepared.get(ctx, _prepared_start_attributes)
                if prepared is not None:
                    add_missing_attributes(span, prepared)
        except Exception:  # fall back to the two uncached processors' behaviour
            CorrelationSpanProcessor.on_start(self, span, parent_context)
            BusinessSpanProcessor.on_start(self, span, parent_context)
        inner_on_start = self._inner_on_start
        if inner_on_start is not None:
            try:
                inner_on_start(span, parent_context=parent_context)
            except Exception:  # never raise into the code that started the span
                _logger.debug("inner span processor on_start failed", exc_info=True)

    def shutdown(self) -> None:
        if self._inner is not None:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis) if self._inner is not None else True

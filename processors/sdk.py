"""``EnrichingSpanProcessor``: cost and redaction on ended spans, in the SDK, before export.

Wraps the span processor that exports (``BatchSpanProcessor``/``SimpleSpanProcessor``). On ``on_end`` it
builds an enriched copy of the ended ``ReadableSpan`` and hands the copy to ``inner.on_end``:

* ``cost.usd`` from ``processors.cost.price_call`` when the span has a GenAI model and token counts
  but no cost (third-party GenAI instrumentations end spans with token counts only);
* with ``redact=True``, through ``processors.redaction``'s built-in rules: span, event and link attributes,
  the status description and the resource's attributes (redacted once per resource).

Why a copy: in opentelemetry-sdk 1.45 ``SpanProcessor._on_ending`` runs after the span's attributes are
frozen, so attributes cannot be added to the span itself once it has ended.

Cheap by construction: when nothing changes the original span object is passed through (no copy); a
copy reuses the original's context, resource, links and status. ``price_table=None`` turns cost off.
Never raises into the caller: a failure is logged once and the original span is passed on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link
from opentelemetry.trace.status import Status

from processors import _sdk_internals
from processors.cost import COST_KEY, PriceTable
from processors.cost.dedup import DUPLICATE_OF_KEY, RESPONSE_ID_KEY, CallRegistry
from processors.cost.pricing import price_call
from processors.redaction import RedactionRules, default_rules

__all__ = ["EnrichingSpanProcessor", "start_hook"]

_logger = logging.getLogger(__name__)
_REQUEST_MODEL = "gen_ai.request.model"
_RESPONSE_MODEL = "gen_ai.response.model"
_Item = TypeVar("_Item", Event, Link)
# Attribute values whose equality implies the same redaction (a str equals only strings of the same text).
_STR_ONLY = frozenset({str})

# Hooks known to do nothing: not delegating to them saves two Python calls per span on the hot path.
_NOOP_ON_START = frozenset({SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start})
_NOOP_ON_ENDING = frozenset({SpanProcessor._on_ending, BatchSpanProcessor._on_ending, SimpleSpanProcessor._on_ending})


def _unless_noop(processor: SpanProcessor, name: str, noops: frozenset[Any]) -> Any:
    """``processor.<name>`` as a bound method, or None when it is missing or one of the known no-ops."""
    method = getattr(processor, name, None)
    if method is None or getattr(method, "__func__", None) in noops:
        return None
    return method


class EnrichingSpanProcessor(SpanProcessor):
    """Adds ``cost.usd`` and redacts attributes of ended spans, then passes them to ``inner``."""

    def __init__(self, inner: SpanProcessor, *, price_table: PriceTable | None, redact: bool) -> None:
        self._inner = inner
        self._table = price_table
        self._calls = CallRegistry()
        self._rules: RedactionRules | None = default_rules() if redact else None
        self._failed: set[str] = set()
        self._resources: dict[int, tuple[Resource, Resource | None]] = {}
        self._last_resource: tuple[Resource | None, Resource | None] = (None, None)
        # A copy of the last attribute set redaction left unchanged, all values str: most spans of a service
        # carry equal attributes (the same tenant, correlation id, outcome), and an equal set redacts the same.
        # One C-level dict comparison replaces the per-attribute scan. A reference swap, atomic under the GIL.
        self._clean: dict[str, Any] | None = None
        self._inner_on_start = start_hook(inner)
        self._inner_on_ending = _unless_noop(inner, "_on_ending", _NOOP_ON_ENDING)
        self._inner_on_end = inner.on_end

    # -------------------------------------------------------------------------------- delegation

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        on_start = self._inner_on_start
        if on_start is None:
            return
        try:
            on_start(span, parent_context=parent_context)
        except Exception:  # never raise into the code that started the span
            self._log_failure("on_start")

    def _on_ending(self, span: Span) -> None:
        on_ending = self._inner_on_ending
        if on_ending is not None:
            try:
                on_ending(span)
            except Exception:
                self._log_failure("_on_ending")

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:
            self._log_failure("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            self._log_failure("force_flush")
            return False

    def _log_failure(self, where: str) -> None:
        if where not in self._failed:
            self._failed.add(where)
            _logger.warning("span processor %s failed", where, exc_info=True)

    # -------------------------------------------------------------------------------- enrichment

    def on_end(self, span: ReadableSpan) -> None:
        try:
            enriched = self._enrich(span)
        except Exception:  # never raise into the caller; pass the original through
            if "enrich" not in self._failed:
                self._failed.add("enrich")
                _logger.warning("span enrichment failed; exporting the span unchanged", exc_info=True)
            enriched = span
        try:
            self._inner_on_end(enriched)
        except Exception:
            self._log_failure("on_end")

    def _enrich(self, span: ReadableSpan) -> ReadableSpan:
        internals = _sdk_internals.use_sdk_internals
        original_attributes = getattr(span, "_attributes", None) if internals else None
        # Read through BoundedAttributes' plain dict when there is one: its Mapping methods are Python
        # code and this runs for every span. Read-only; the public property is the fallback.
        attributes: Mapping[str, Any] | None = getattr(original_attributes, "_dict", None)
        if type(attributes) is not dict:
            attributes = span.attributes or {}
        new_attributes: dict[str, Any] | None = None
        table = self._table
        if table is not None and (_REQUEST_MODEL in attributes or _RESPONSE_MODEL in attributes):
            scope = span.instrumentation_scope
            scope_name = scope.name if scope is not None else None
            call = price_call(attributes, table, start_ns=span.start_time, scope=scope_name)
            if call is not None:
                parent = span.parent
                holder = self._calls.holder(
                    attributes.get(RESPONSE_ID_KEY),
                    _span_key(span),
                    parent.span_id.to_bytes(8, "big") if parent is not None else b"",
                    call.cost is not None or COST_KEY in attributes,
                    call.fingerprint,
                )
                if holder is not None:  # the call's cost is on another span (processors.cost.dedup)
                    new_attributes = {k: v for k, v in attributes.items() if k != COST_KEY}
                    new_attributes[DUPLICATE_OF_KEY] = holder[16:].hex()
                elif call.cost is not None:
                    new_attributes = {**attributes, COST_KEY: call.cost}
        parts: _Redacted | None = None
        rules = self._rules
        if rules is not None:
            if new_attributes is not None:
                redacted = rules.redact_changes(new_attributes)
                if redacted is not None:
                    new_attributes = redacted
            elif attributes != self._clean:
                new_attributes = rules.redact_changes(attributes)
                if new_attributes is None and _STR_ONLY.issuperset(map(type, attributes.values())):
                    self._clean = dict(attributes)
            if internals and not span._events and not span._links and not span._status.description:
                # Most spans: nothing but the resource to look at, and that is redacted once per provider.
                last_resource, resource = self._last_resource
                if last_resource is not span._resource:
                    resource = self._redacted_resource(span._resource, rules)
                    self._last_resource = (span._resource, resource)
                parts = None if resource is None else _Redacted(resource=resource)
            else:
                parts = self._redact_parts(span, rules)
        if new_attributes is None and parts is None:
            return span
        if parts is None:
            parts = _Redacted()
        if original_attributes is None:  # the public path: keep the dropped count exporters report
            original_attributes = _counted(attributes, span.dropped_attributes)
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=parts.resource or span.resource,
            attributes=(
                _like(original_attributes, new_attributes) if new_attributes is not None else original_attributes
            ),
            events=parts.events if parts.events is not None else _sdk_list(span, "events"),
            links=parts.links if parts.links is not None else _sdk_list(span, "links"),
            kind=span.kind,
            status=parts.status or span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_info=_internal(span, "_instrumentation_info"),
            instrumentation_scope=span.instrumentation_scope,
        )

    def _redact_parts(self, span: ReadableSpan, rules: RedactionRules) -> _Redacted | None:
        """Redacted copies of the span's events, links, status and resource (None where one did not change), or
        None when none changed."""
        new_events = _redact_each(span.events, rules, lambda e, attributes: Event(e.name, attributes, e.timestamp))
        new_links = _redact_each(span.links, rules, lambda link, attributes: Link(link.context, attributes))
        new_status: Status | None = None
        description = span.status.description
        if description:
            redacted_description = rules.redact_string(description)
            if redacted_description is not description:
                new_status = Status(span.status.status_code, redacted_description)
        new_resource = self._redacted_resource(span.resource, rules)
        if new_events is None and new_links is None and new_status is None and new_resource is None:
            return None
        return _Redacted(new_events, new_links, new_status, new_resource)

    def _redacted_resource(self, resource: Resource, rules: RedactionRules) -> Resource | None:
        # A provider has one resource for all its spans: redact it once, not per span.
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            changed = rules.redact_changes(resource.attributes)
            redacted = None if changed is None else Resource(changed, resource.schema_url)  # type: ignore[arg-type]
            if len(self._resources) >= 16:
                self._resources.clear()
            cached = self._resources[id(resource)] = (resource, redacted)
        return cached[1]


def start_hook(processor: SpanProcessor) -> Callable[..., None] | None:
    """``processor.on_start`` as a bound method, or None when it is known to do nothing (a wrapping processor
    then skips the call): the SDK's batch and simple processors, and an ``EnrichingSpanProcessor`` around one."""
    if isinstance(processor, EnrichingSpanProcessor) and processor._inner_on_start is None:
        return None
    return _unless_noop(processor, "on_start", _NOOP_ON_START)  # type: ignore[no-any-return]


@dataclass
class _Redacted:
    events: list[Event] | None = None
    links: list[Link] | None = None
    status: Status | None = None
    resource: Resource | None = None


def _redact_each(
    items: Sequence[_Item], rules: RedactionRules, rebuild: Callable[[_Item, Any], _Item]
) -> list[_Item] | None:
    """``items`` with each one's attributes redacted (``rebuild(item, attributes)``), or None if none changed."""
    out: list[_Item] | None = None
    for i, item in enumerate(items):
        changed = rules.redact_changes(item.attributes) if item.attributes else None
        if changed is not None:
            if out is None:
                out = list(items)
            out[i] = rebuild(item, _like(item.attributes, changed))
    return out


def _internal(span: ReadableSpan, name: str, default: Any = None) -> Any:
    """The SDK's own container behind a public property (cheaper, and it keeps its dropped count), on an SDK
    version these internals were tested on (``processors._sdk_internals``); else ``default``."""
    return getattr(span, name, default) if _sdk_internals.use_sdk_internals else default


def _sdk_list(span: ReadableSpan, name: str) -> Any:
    """The span's own ``events`` or ``links`` list (its ``_events``/``_links``), or off a tested SDK a copy of the
    public tuple with the same ``dropped_events``/``dropped_links`` count."""
    own = _internal(span, f"_{name}")
    if own is not None:
        return own
    items, dropped = getattr(span, name), getattr(span, f"dropped_{name}")
    if not dropped:
        return items
    bounded: BoundedList[Any] = BoundedList(None)
    bounded.extend(items)
    bounded.dropped = dropped
    return bounded


def _counted(attributes: Mapping[str, Any], dropped: int) -> Any:
    """``attributes`` with a dropped-attribute count (exporters report it)."""
    if not dropped:
        return attributes
    bounded = BoundedAttributes(maxlen=None, attributes=attributes, immutable=True)
    bounded.dropped = dropped
    return bounded


def _span_key(span: ReadableSpan) -> bytes:
    context = span.context
    if context is None:
        return b""
    trace_id: int = context.trace_id
    span_id: int = context.span_id
    return trace_id.to_bytes(16, "big") + span_id.to_bytes(8, "big")


def _like(original: Any, attributes: dict[str, Any]) -> Any:
    """``attributes``, keeping the original's dropped-attribute count."""
    return _counted(attributes, original.dropped if isinstance(original, BoundedAttributes) else 0)

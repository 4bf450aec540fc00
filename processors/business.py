"""Business metadata: tenant, user, session, feature and agent attributes on every span.

Names (docs/conventions.md): ``tenant.id``, ``user.id``, ``session.id``, ``feature.name``,
``gen_ai.agent.name``, ``agent.role`` (``BUSINESS_KEYS``) plus any key the application chooses.
Values must be str, bool, int or float; anything else is logged and skipped, never raised.

SDK face
    ``set_business_attributes(attrs, propagate=False)`` returns a context carrying ``attrs`` locally
    (this process only, types kept). With ``propagate=True`` they also go into W3C baggage, so
    downstream services see them: keys in ``BUSINESS_KEYS`` under their own name, any other key as
    ``business.<key>`` (``BAGGAGE_PREFIX``). Baggage values are text, so a propagated ``bool``/``int``
    arrives in another process as a string. ``get_business_attributes`` merges both (local wins).
    ``BusinessSpanProcessor.on_start`` puts them on each span, never overwriting an attribute the span
    already has.

Collector face: processor type ``business`` (traces, logs)
    Copies resource attributes onto spans/log records that lack them, then fills defaults. Config keys:

    ``from_resource`` (default: the ``BUSINESS_KEYS``)
        resource attribute keys copied onto items that do not carry the key.
    ``from_attributes`` (default ``{}``)
        source attribute -> target key on the same span/log record, copied when the target is missing:
        for baggage copied verbatim by other SDKs' baggage span processors, e.g.
        ``{business.plan: plan}``. Applied before ``from_resource``.
    ``defaults`` (default ``{}``)
        key -> string value set on items still without the key, e.g. ``{tenant.id: unknown}``.
    ``override`` (default ``false``)
        when true, resource values replace item values instead of only filling gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from opentelemetry import baggage
from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor

from processors._attributes import pick_attributes, set_attribute
from processors.pipeline import Consumer, CreateSettings, ProcessorFactory, Request, Signal, SyncProcessor, changing

__all__ = [
    "BAGGAGE_PREFIX",
    "BUSINESS_KEYS",
    "BusinessConfig",
    "BusinessSpanProcessor",
    "factories",
    "get_business_attributes",
    "set_business_attributes",
]

_logger = logging.getLogger(__name__)

AttributeValue: TypeAlias = str | bool | int | float

BUSINESS_KEYS: tuple[str, ...] = (
    "tenant.id",
    "user.id",
    "session.id",
    "feature.name",
    "gen_ai.agent.name",
    "agent.role",
)
_BUSINESS_KEY_SET = frozenset(BUSINESS_KEYS)
BAGGAGE_PREFIX = "business."

# Local (in-process) attributes live under this context key, typed, never serialised.
_LOCAL_KEY = context_api.create_key("otel_metrics.business_attributes")
# The context key of the SDK's baggage dict (a private name of opentelemetry.baggage; without it the caches
# below fall back to the context object's identity).
_BAGGAGE_CONTEXT_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
_UNSET: Any = object()


def _context_inputs(context: Context) -> tuple[object, object]:
    """What the business attributes and the correlation id of ``context`` are read from: its baggage dict and
    its local attributes. Both are replaced, never changed in place, when a context is derived, so the same
    two objects (identity) give the same answer; a new span's context keeps both of its parent's."""
    bag = context.get(_BAGGAGE_CONTEXT_KEY) if _BAGGAGE_CONTEXT_KEY is not None else context
    return bag, context.get(_LOCAL_KEY)


def _baggage_key(key: str) -> str:
    return key if key in _BUSINESS_KEY_SET else BAGGAGE_PREFIX + key


def _baggage_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _valid(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    valid: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            _logger.warning("skipping business attribute with invalid key %r", key)
        elif isinstance(value, str | bool | int | float):
            valid[key] = value
        else:
            _logger.warning(
                "skipping business attribute %r: expected str, bool, int or float, got %s",
                key,
                type(value).__name__,
            )
    return valid


def _read_business_attributes(context: Context) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {}
    for key, value in baggage.get_all(context).items():
        if not isinstance(value, str):
            continue
        if key in _BUSINESS_KEY_SET:
            result[key] = value
        elif key.startswith(BAGGAGE_PREFIX) and len(key) > len(BAGGAGE_PREFIX):
            result[key[len(BAGGAGE_PREFIX) :]] = value
    local = context_api.get_value(_LOCAL_KEY, context)
    if isinstance(local, Mapping):
        result.update(local)
    return result


# The answer for the last (baggage, local attributes) pair: nested spans of one request hit it (~2.7 µs).
_last_business: tuple[object, object, dict[str, AttributeValue]] = (_UNSET, _UNSET, {})


def get_business_attributes(context: Context | None = None) -> dict[str, AttributeValue]:
    """Business attributes of ``context`` (default: current): propagated baggage ones, then local ones."""
    global _last_business
    try:
        ctx = context if context is not None else context_api.get_current()
        bag, local = _context_inputs(ctx)
        last_bag, last_local, result = _last_business
        if last_bag is not bag or last_local is not local:
            result = _read_business_attributes(ctx)
            _last_business = (bag, local, result)  # a tuple swap: atomic under the GIL
        return dict(result)  # the caller's own copy
    except Exception:  # never raise into user code
        _logger.debug("reading business attributes failed", exc_info=True)
        return {}


def set_business_attributes(
    attributes: Mapping[str, object],
    *,
    propagate: bool = False,
    context: Context | None = None,
) -> Context:
    """A context carrying ``attributes`` (merged over existing ones); in W3C baggage too if ``propagate``.

    Invalid keys or values are logged and skipped; this never raises.
    """
    ctx = context if context is not None else context_api.get_current()
    try:
        valid = _valid(attributes)
        if not valid:
            return ctx
        local = context_api.get_value(_LOCAL_KEY, ctx)
        merged = dict(local) if isinstance(local, Mapping) else {}
        merged.update(valid)
        ctx = context_api.set_value(_LOCAL_KEY, MappingProxyType(merged), ctx)
        if propagate:
            for key, value in valid.items():
                ctx = baggage.set_baggage(_baggage_key(key), _baggage_text(value), ctx)
        return ctx
    except Exception:  # never raise into user code
        _logger.warning("setting business attributes failed", exc_info=True)
        return ctx


class BusinessSpanProcessor(SpanProcessor):
    """Sets the business attributes of the parent context on each new span (existing ones win)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = get_business_attributes(parent_context)
            if not attributes:
                return
            existing = span.attributes or {}
            if any(key in existing for key in attributes):
                attributes = {k: v for k, v in attributes.items() if k not in existing}
            span.set_attributes(attributes)
        except Exception:  # never raise into user code
            _logger.debug("business on_start failed", exc_info=True)


# ------------------------------------------------------------------------------------ collector face


@dataclass
class BusinessConfig:
    # Resource attributes copied onto each span and log record of that resource (tenant, user, feature, agent
    # keys by default); an attribute the item already has wins unless ``override``.
    from_resource: list[str] = field(default_factory=lambda: list(BUSINESS_KEYS))
    # Item attribute -> business key to copy it to (e.g. ``customer_id: tenant.id``), when the item lacks that key.
    from_attributes: dict[str, str] = field(default_factory=dict)
    # Business key -> value set on items that have it neither themselves nor from their resource.
    defaults: dict[str, str] = field(default_factory=dict)
    # Resource values replace the item's own values for the ``from_resource`` keys.
    override: bool = False

    def validate(self) -> list[str]:
        errors = []
        for i, key in enumerate(self.from_resource):
            if not isinstance(key, str) or not key:
                errors.append(f"from_resource[{i}]: expected a non-empty attribute key, got {key!r}")
        for source, target in self.from_attributes.items():
            if not isinstance(target, str) or not target:
                errors.append(f"from_attributes.{source}: expected a non-empty target key, got {target!r}")
        for key, value in self.defaults.items():
            if not isinstance(key, str) or not key:
                errors.append(f"defaults: expected non-empty attribute keys, got {key!r}")
            elif not isinstance(value, str | bool | int | float):
                errors.append(f"defaults.{key}: expected a string, got {type(value).__name__}")
        return errors


class _BusinessProcessor(SyncProcessor):
    reports_changes = True

    def __init__(self, settings: CreateSettings, config: BusinessConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._from_resource = frozenset(config.from_resource)
        self._defaults = dict(config.defaults)
        self._override = config.override
        self._renames = dict(config.from_attributes)
        self._rename_sources = frozenset(self._renames)

    def _apply(self, request: Request, resource: Resource, items: Iterable[Any]) -> None:
        from_resource = {
            k: v for k, v in pick_attributes(resource.attributes, self._from_resource).items() if v is not None
        }
        defaults = {k: v for k, v in self._defaults.items() if k not in from_resource}
        if not from_resource and not defaults and not self._renames:
            return
        changing(request)
        for item in items:
            present = {kv.key for kv in item.attributes}
            if self._renames and not present.isdisjoint(self._rename_sources):
                for source, value in pick_attributes(item.attributes, self._rename_sources).items():
                    target = self._renames[source]
                    if target not in present and value is not None:
                        set_attribute(item.attributes, target, value)
                        present.add(target)
            for key, value in from_resource.items():
                if self._override or key not in present:
                    set_attribute(item.attributes, key, value)
            for key, value in defaults.items():
                if key not in present:
                    set_attribute(item.attributes, key, value)

    def process(self, signal: Signal, request: Request) -> bool:
        if isinstance(request, ExportTraceServiceRequest):
            for rs in request.resource_spans:
                self._apply(request, rs.resource, (span for ss in rs.scope_spans for span in ss.spans))
        elif isinstance(request, ExportLogsServiceRequest):
            for rl in request.resource_logs:
                self._apply(request, rl.resource, (rec for sl in rl.scope_logs for rec in sl.log_records))
        return True


factories: tuple[ProcessorFactory[BusinessConfig], ...] = (
    ProcessorFactory(
        type="business",
        config_type=BusinessConfig,
        create=_BusinessProcessor,
        signals=frozenset({Signal.TRACES, Signal.LOGS}),
    ),
)

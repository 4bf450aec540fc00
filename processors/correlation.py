"""Correlation ids: one ``correlation.id`` per end-to-end request, across services.

The id travels in W3C baggage under ``correlation.id`` and is written on every span as the span
attribute ``correlation.id`` (docs/conventions.md). A valid id is a string of 1..128 characters from
``[A-Za-z0-9._:-]``; anything else is rejected (never truncated or "fixed"), so an id read from a header
cannot smuggle arbitrary text into the sink.

SDK face
    ``CorrelationSpanProcessor``: ``on_start`` copies the baggage ``correlation.id`` of the parent
    context onto the span (unless the span already carries one). ``get_correlation_id`` and
    ``set_correlation_id`` read and write the baggage entry; ``new_correlation_id`` makes a uuid4.

Collector face: processor type ``correlation`` (traces, logs)
    For each span or log record without a valid ``correlation.id`` attribute, the first valid value
    among ``from_attributes`` becomes its ``correlation.id``; with ``from_trace``, an item still without
    one takes the id of another item of the same trace in the same request. Config keys:

    ``from_attributes`` (default ``[correlation.id, http.request.header.x-correlation-id,
    http.request.header.x-request-id, request.id]``)
        attribute keys looked at, in order. Semconv request-header attributes are string arrays; their first
        element is used.
    ``from_trace`` (default ``true``)
        fill remaining items from other items of the same trace in the same request. Only what is in
        one request is seen (put this processor after ``batch`` to see more of a trace).

    An invalid value is never copied; an invalid ``correlation.id`` already on an item is replaced only when a
    valid one is found, and otherwise left as it is.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.sdk.trace import Span, SpanProcessor

from processors._attributes import any_value_to_python, set_attribute
from processors.pdata import iter_log_records, iter_spans
from processors.pipeline import (
    Consumer,
    CreateSettings,
    ProcessorFactory,
    Request,
    Signal,
    SyncProcessor,
    changing,
    serialized,
)

__all__ = [
    "CORRELATION_ID_KEY",
    "CorrelationConfig",
    "CorrelationSpanProcessor",
    "correlation_id_from_attributes",
    "factories",
    "get_correlation_id",
    "new_correlation_id",
    "set_correlation_id",
    "validate_correlation_id",
]

_logger = logging.getLogger(__name__)
# The context key of the SDK's baggage dict (a private name of opentelemetry.baggage; without it the cache in
# get_correlation_id falls back to the context object's identity).
_BAGGAGE_CONTEXT_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)

CORRELATION_ID_KEY = "correlation.id"
MAX_CORRELATION_ID_LENGTH = 128
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

DEFAULT_FROM_ATTRIBUTES: tuple[str, ...] = (
    CORRELATION_ID_KEY,
    "http.request.header.x-correlation-id",
    "http.request.header.x-request-id",
    "request.id",
)
DEFAULT_FROM_TRACE = True


def validate_correlation_id(value: object) -> str | None:
    """``value`` when it is a valid correlation id (str, 1..128 chars of ``[A-Za-z0-9._:-]``), else None."""
    if not isinstance(value, str) or _VALID_ID.fullmatch(value) is None:
        return None
    return value


def new_correlation_id() -> str:
    """A fresh random correlation id (uuid4 text)."""
    return str(uuid.uuid4())


# The answer for the last baggage dict (identity; see processors.business._context_inputs): nested spans of
# one request share their parent's baggage.
_last_lookup: tuple[object, str | None] = (object(), None)


def get_correlation_id(context: Context | None = None) -> str | None:
    """The valid correlation id in the baggage of ``context`` (default: the current context), else None."""
    global _last_lookup
    try:
        ctx = context if context is not None else _current_context()
        bag = ctx.get(_BAGGAGE_CONTEXT_KEY) if _BAGGAGE_CONTEXT_KEY is not None else ctx
        last_bag, correlation_id = _last_lookup
        if last_bag is not bag:
            correlation_id = validate_correlation_id(baggage.get_baggage(CORRELATION_ID_KEY, ctx))
            _last_lookup = (bag, correlation_id)
        return correlation_id
    except Exception:  # never raise into user code
        _logger.debug("reading correlation id from baggage failed", exc_info=True)
        return None


def set_correlation_id(correlation_id: str, context: Context | None = None) -> Context:
    """A context whose baggage carries ``correlation_id``.

    An invalid id is logged and ``context`` (default: the current one) is returned unchanged.
    """
    valid = validate_correlation_id(correlation_id)
    try:
        if valid is None:
            _logger.warning(
                "ignoring invalid correlation id %.140r (expected 1..128 of [A-Za-z0-9._:-])", correlation_id
            )
            return context if context is not None else _current_context()
        return baggage.set_baggage(CORRELATION_ID_KEY, valid, context)
    except Exception:  # never raise into user code
        _logger.warning("setting correlation id failed", exc_info=True)
        return context if context is not None else _current_context()


def _current_context() -> Context:
    from opentelemetry.context import get_current

    return get_current()


def correlation_id_from_value(value: object) -> str | None:
    """A valid id from an attribute value: a string, or the first element of a string array (header attrs)."""
    if isinstance(value, list | tuple) and value:
        value = value[0]
    return validate_correlation_id(value)


def correlation_id_from_attributes(attributes: dict[str, object], keys: Sequence[str]) -> str | None:
    """The first valid correlation id among ``keys`` of a python attribute map."""
    for key in keys:
        found = correlation_id_from_value(attributes.get(key))
        if found is not None:
            return found
    return None


class CorrelationSpanProcessor(SpanProcessor):
    """Copies the baggage ``correlation.id`` of the parent context onto each new span."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            correlation_id = get_correlation_id(parent_context)
            if correlation_id is not None and CORRELATION_ID_KEY not in (span.attributes or {}):
                span.set_attribute(CORRELATION_ID_KEY, correlation_id)
        except Exception:  # never raise into user code
            _logger.debug("correlation on_start failed", exc_info=True)


# ------------------------------------------------------------------------------------ collector face


@dataclass
class CorrelationConfig:
    # Attributes to take a correlation id from, first valid one wins, for items without ``correlation.id``.
    from_attributes: list[str] = field(default_factory=lambda: list(DEFAULT_FROM_ATTRIBUTES))
    # Items still without one take the id of another item of the same trace in the same request.
    from_trace: bool = DEFAULT_FROM_TRACE

    def validate(self) -> list[str]:
        errors = []
        for i, key in enumerate(self.from_attributes):
            if not isinstance(key, str) or not key:
                errors.append(f"from_attributes[{i}]: expected a non-empty attribute key, got {key!r}")
        return errors


def _ids_from_kvs(attributes: Iterable[KeyValue], rank_of: dict[str, int]) -> tuple[str | None, str | None]:
    """(the item's own valid ``correlation.id``, the first valid id by key rank) of an OTLP attribute list."""
    best_rank = len(rank_of)
    best: str | None = None
    own: str | None = None
    for kv in attributes:
        key = kv.key  # one str per attribute: most keys are neither the own key nor a source
        if key == CORRELATION_ID_KEY:
            own = validate_correlation_id(kv.value.string_value) or own
        rank = rank_of.get(key)
        if rank is not None and rank < best_rank:
            found = correlation_id_from_value(any_value_to_python(kv.value))
            if found is not None:
                best, best_rank = found, rank
    return own, best


class _CorrelationProcessor(SyncProcessor):
    reports_changes = True

    def __init__(self, settings: CreateSettings, config: CorrelationConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        keys = list(config.from_attributes)
        self._rank_of = {key: rank for rank, key in reversed(list(enumerate(keys)))}
        self._from_trace = config.from_trace
        # The item's own key first: spans from our SDK carry it, so ``in`` stops at its first occurrence.
        self._needles = tuple(key.encode() for key in dict.fromkeys([CORRELATION_ID_KEY, *keys]))
        self._precheck = True

    def _has_candidates(self, request: Request) -> bool:
        """False when no item can carry an id: none of the keys occurs anywhere in the serialized request.

        An attribute key is written verbatim in the wire format, so a key absent from the bytes is absent from
        every item (a key found inside some value only costs the per-item scan). Serializing the request in C
        and searching it costs a fraction of reading every attribute key in python; the received bytes cost
        nothing (processors.pipeline.serialized)."""
        data = serialized(request)
        return any(needle in data for needle in self._needles)

    def _fill(self, items: Iterable[Any]) -> bool:
        """Set ids; True when some item had one (then the next request probably has ids too)."""
        # items: spans or log records (both have .attributes and .trace_id)
        by_trace: dict[bytes, str] = {}
        missing: list[Any] = []
        seen = False
        for item in items:
            own, found = _ids_from_kvs(item.attributes, self._rank_of)
            if own is not None:
                found = own
            elif found is not None:
                set_attribute(item.attributes, CORRELATION_ID_KEY, found)
            if found is None:
                missing.append(item)
                continue
            seen = True
            if item.trace_id:
                by_trace.setdefault(item.trace_id, found)
        if self._from_trace and by_trace:
            for item in missing:
                found = by_trace.get(item.trace_id)
                if found is not None:
                    set_attribute(item.attributes, CORRELATION_ID_KEY, found)
        return seen

    def process(self, signal: Signal, request: Request) -> bool:
        # The pre-check pays off for traffic without ids and is wasted on traffic with them (spans from our SDK
        # all carry one): it runs only while the last request scanned had no id at all.
        items: Iterable[Any] | None = None
        if isinstance(request, ExportTraceServiceRequest):
            items = (span for _, span in iter_spans(request))
        elif isinstance(request, ExportLogsServiceRequest):
            items = (record for _, record in iter_log_records(request))
        if items is not None and (not self._precheck or self._has_candidates(request)):
            changing(request)
            self._precheck = not self._fill(items)
        return True


factories: tuple[ProcessorFactory[CorrelationConfig], ...] = (
    ProcessorFactory(
        type="correlation",
        config_type=CorrelationConfig,
        create=_CorrelationProcessor,
        signals=frozenset({Signal.TRACES, Signal.LOGS}),
    ),
)

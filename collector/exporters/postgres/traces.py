"""OTLP spans to rows of ``spans``, ``span_events`` and ``span_links`` (column order = ``SPAN_COLUMNS`` etc.).

Which attribute fills which column, and how, is the table ``span_columns.ATTRIBUTE_COLUMNS``; this module reads each
span's attributes once (normally from their wire bytes, through a cache) and fills the row from that table.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from processors.pdata import read_varint

from . import sampling
from ._values import any_value, attributes_dict, clean_text, dumps, int2, int4, resource_columns, signed32, to_json
from .span_columns import (
    ATTRIBUTE_COLUMNS,
    EVENT_COLUMNS,
    LINK_COLUMNS,
    SPAN_COLUMNS,
    TOKEN_COLUMN_INDEXES,
    cost_units,
)
from .span_columns import text as _text

__all__ = [
    "EVENT_COLUMNS",
    "LINK_COLUMNS",
    "MAX_SPANS_PER_WRITE",
    "SPAN_COLUMNS",
    "SpanRecord",
    "cost_units",
    "iter_span_records",
    "span_record_chunks",
    "span_records",
]

# Spans whose rows a writer holds at once, at most. Rows take ~4 KiB a span: the one transaction of a 100,000-span
# request (13 MB on the wire, one OTLP/HTTP request) held 380 MiB at once, more than the default limit_mib of the
# whole collector, after the memory_limiter had admitted the request. The writer takes a larger batch's spans a chunk
# at a time and writes each chunk as it writes a batch (a redelivered one takes the idempotent ON CONFLICT path).
MAX_SPANS_PER_WRITE = 10_000

# A span's attribute-backed values, in ``ATTRIBUTE_COLUMNS`` order (contiguous in the row).
_N_COLUMNS = len(ATTRIBUTE_COLUMNS)
# Text columns: attribute key -> position among the attribute-backed values.
_TEXT_INDEX = {c.keys[0]: i for i, c in enumerate(ATTRIBUTE_COLUMNS) if c.convert is None}
# Converted columns: (position, keys, converter, keys that move out of the attributes when lossless, the type its
# converter takes as it is, losslessly: the common case, without a call).
_CONVERTED = tuple(
    (i, c.keys, c.convert, frozenset(c.moves), c.exact)
    for i, c in enumerate(ATTRIBUTE_COLUMNS)
    if c.convert is not None
)
_DUPLICATE_OF = "cost.duplicate_of"
_WEIGHT = next(i for i, c in enumerate(ATTRIBUTE_COLUMNS) if c.name == "adjusted_count")
_CONVERTED_FOLDED = tuple(c for c in _CONVERTED if c[0] not in TOKEN_COLUMN_INDEXES)
# Positions whose text may still hold NUL after conversion (label columns convert strings as they are).
_LABELS = tuple(i for i, c in enumerate(ATTRIBUTE_COLUMNS) if c.convert is not None and c.type == "text")
_INT2_MAX = 2**15 - 1
_INT4_MAX = 2**31 - 1
_EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")
# Slots of a ``_kv_entry``: 0.._N_COLUMNS-1 a text column given a string; _N_COLUMNS + i the text column i given
# another type; _SPECIAL a key a converted column reads; None any other attribute.
_SPECIAL = 2 * _N_COLUMNS
_SLOT: dict[str, int] = {**_TEXT_INDEX, **{key: _SPECIAL for _, keys, *_ in _CONVERTED for key in keys}}
# Decoded attributes by their wire bytes (KeyValue). Most attributes repeat (routes, models, tenants, counts); the
# cache is emptied when full, so unique values (ids) cost one insert each and memory stays bounded.
# (key, value, slot, hot text, JSON member): see _kv_entry.
_Entry = tuple[str, Any, int | None, str | None, str | None]
_KV_CACHE: dict[bytes, _Entry] = {}
_KV_CACHE_MAX = 8192
_KV_CACHE_MAX_BYTES = 256  # long values (prompts, stack traces) are rarely repeated: not cached
_STATUS_CACHE: dict[bytes, tuple[int, str | None]] = {}
_STATUS_CACHE_MAX = 1024
_DOUBLE = struct.Struct("<d")


@dataclass(slots=True)
class SpanRecord:
    """One span's rows, and the span itself for the quarantine if PostgreSQL still rejects it."""

    row: tuple[Any, ...]
    events: list[tuple[Any, ...]]
    links: list[tuple[Any, ...]]
    span: Any
    repairs: list[str] = field(default_factory=list)
    # Set when the span could not be turned into rows at all: it goes to the quarantine with this reason.
    failure: str | None = None


def _shadow_request_class() -> Any:
    """``ExportTraceServiceRequest`` as seen through a narrower schema: each span's attributes as their ``KeyValue``
    wire bytes and its status as ``Status`` bytes (wire-compatible: both are length-delimited). Reading 9
    attributes through protobuf wrappers costs ~5 µs a span; these bytes and a cache, well under 1 µs.
    """
    proto = descriptor_pb2.FileDescriptorProto(
        name="otel_metrics/postgres_span_rows.proto", package="otel_metrics.postgres_span_rows", syntax="proto3"
    )
    field_type = descriptor_pb2.FieldDescriptorProto
    for message, (name, number, kind, label, type_name) in (
        ("Request", ("resource_spans", 1, field_type.TYPE_MESSAGE, field_type.LABEL_REPEATED, "ResourceSpans")),
        ("ResourceSpans", ("scope_spans", 2, field_type.TYPE_MESSAGE, field_type.LABEL_REPEATED, "ScopeSpans")),
        ("ScopeSpans", ("spans", 2, field_type.TYPE_MESSAGE, field_type.LABEL_REPEATED, "Span")),
        ("Span", ("attributes", 9, field_type.TYPE_BYTES, field_type.LABEL_REPEATED, "")),
        ("Span", ("status", 15, field_type.TYPE_BYTES, field_type.LABEL_OPTIONAL, "")),
    ):
        found = [m for m in proto.message_type if m.name == message]
        descriptor = found[0] if found else proto.message_type.add(name=message)
        added = descriptor.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = f".{proto.package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{proto.package}.Request"))


_ShadowRequest = _shadow_request_class()


def _shadow(request: ExportTraceServiceRequest, wire: bytes | None) -> Any:
    try:
        return _ShadowRequest.FromString(request.SerializeToString() if wire is None else wire)
    except Exception:  # cannot happen for a request protobuf itself decoded; the protobuf pass still works
        return None


def _kv_entry(kv: bytes) -> _Entry | None:
    """(key, value, slot, hot text, JSON member) of a KeyValue's wire bytes; None: the protobuf pass reads the span.

    The bytes are what protobuf serialization writes (fields in number order, each once, unknown fields last): key
    (1, omitted when empty), then value (2): an AnyValue holding string (1), bool (2), int (3) or double (4). Anything
    else (empty key, no value, array, kvlist, bytes, unknown fields, NUL in a hot text) is left to protobuf.
    """
    end = len(kv)
    if end < 4 or kv[0] != 0x0A:
        return None
    key_len = kv[1]
    at = key_len + 4  # the AnyValue's first byte when both lengths take one byte (the common case)
    if key_len < 0x80 and at < end and kv[at - 2] == 0x12 and kv[at - 1] == end - at < 0x80:
        key = kv[2 : at - 2].decode()  # UTF-8 already validated by protobuf (proto3 strings)
    else:  # a length of 128 bytes or more
        key_len, key_at = read_varint(kv, 1)
        value_tag = key_at + key_len
        if key_len < 0 or kv[value_tag : value_tag + 1] != b"\x12":
            return None
        value_len, at = read_varint(kv, value_tag + 1)
        if value_len < 1 or at + value_len != end:
            return None
        key = kv[key_at:value_tag].decode()
    tag = kv[at]
    if tag == 0x0A:  # string_value
        length = kv[at + 1] if end - at > 1 else 0x80
        if length < 0x80 and at + 2 + length == end:
            item: Any = kv[at + 2 :].decode()
        else:
            length, start = read_varint(kv, at + 1)
            if start + length != end:
                return None
            item = kv[start:].decode()
    elif tag == 0x21:  # double_value
        if end - at != 9:
            return None
        item = _DOUBLE.unpack_from(kv, at + 1)[0]
        slot = _SLOT.get(key)
        if slot is not None and slot < _N_COLUMNS:
            return key, item, _N_COLUMNS + slot, _text(item), None
        return key, item, slot, None, None  # not cached: doubles are mostly measurements, rarely repeated
    elif tag == 0x18:  # int_value (int64, two's complement in 10 bytes when negative)
        item, after = read_varint(kv, at + 1)
        if item < 0 or after != end or item >= 1 << 64:
            return None
        if item >= 1 << 63:
            item -= 1 << 64
    elif tag == 0x10 and end - at == 2 and kv[at + 1] < 2:  # bool_value
        item = kv[at + 1] == 1
    else:
        return None
    slot = _SLOT.get(key)
    text = None
    if slot is not None and slot < _N_COLUMNS:
        if tag != 0x0A:
            slot += _N_COLUMNS
            text = _text(item)
        elif "\x00" in item:  # repaired (and reported) by the protobuf pass
            return None
    try:  # ``"key":value`` as in the span's attributes jsonb; None if to_json would repair it
        member: str | None = dumps({key: item})[1:-1]
    except ValueError:
        member = None
    if member is not None and "\\u0000" in member:
        member = None
    entry = (key, item, slot, text, member)
    if end <= _KV_CACHE_MAX_BYTES:
        if len(_KV_CACHE) >= _KV_CACHE_MAX:
            _KV_CACHE.clear()
        _KV_CACHE[kv] = entry
    return entry


def _joined(attrs: dict[str, Any], entries: dict[str, _Entry]) -> str | None:
    """``to_json(attrs)`` from the entries' JSON members (the C encoder writes a dict as its members joined by
    commas), or None when one has none (non-finite number, NUL, uncached double)."""
    members = [entries[key][4] for key in attrs]
    try:
        return "{" + ",".join(members) + "}"  # type: ignore[arg-type]  # a None member raises TypeError
    except TypeError:
        return None


def _status_entry(data: bytes) -> tuple[int, str | None]:
    status = Status.FromString(data)
    entry = (status.code, status.message or None)
    if len(data) <= _KV_CACHE_MAX_BYTES:
        if len(_STATUS_CACHE) >= _STATUS_CACHE_MAX:
            _STATUS_CACHE.clear()
        _STATUS_CACHE[data] = entry
    return entry


def span_records(request: ExportTraceServiceRequest, wire: bytes | None = None) -> list[SpanRecord]:
    """One record per span of ``request``; ``wire``: the bytes ``request`` was parsed from, if at hand (saves
    serializing it again to read attributes as bytes)."""
    return list(iter_span_records(request, wire))


def span_record_chunks(
    requests: Sequence[ExportTraceServiceRequest], wires: Sequence[bytes] | None, size: int
) -> Iterator[list[SpanRecord]]:
    """The records of ``requests`` (``wires``: the bytes each was parsed from, if at hand), ``size`` at most at a
    time: only one chunk's rows need to exist at once."""
    known = wires if wires is not None else [None] * len(requests)
    records = chain.from_iterable(iter_span_records(r, w) for r, w in zip(requests, known, strict=True))
    while chunk := list(islice(records, size)):
        yield chunk


def iter_span_records(request: ExportTraceServiceRequest, wire: bytes | None = None) -> Iterator[SpanRecord]:
    """``span_records`` one at a time, so a writer can hold the rows of part of a large request at once."""
    now_ns = time.time_ns()
    shadow = _shadow(request, wire)
    # The shadow has the same resource_spans/scope_spans/spans, element for element (serializing writes every element
    # of a repeated message field, even an empty one).
    shadow_resources = shadow.resource_spans if shadow is not None else None
    for r, resource_spans in enumerate(request.resource_spans):
        _, service_name, resource_json, resource_repairs = resource_columns(resource_spans.resource)
        shadow_scopes = shadow_resources[r].scope_spans if shadow_resources is not None else None
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_name = clean_text(scope.name, "scope name", resource_repairs) or None
            scope_version = clean_text(scope.version, "scope version", resource_repairs) or None
            spans = scope_spans.spans
            shadow_spans = shadow_scopes[s].spans if shadow_scopes is not None else repeat(None, len(spans))
            for span, shadow_span in zip(spans, shadow_spans, strict=True):
                repairs = resource_repairs[:]
                try:
                    record = _span_record(
                        span, shadow_span, service_name, scope_name, scope_version, resource_json, repairs, now_ns
                    )
                except Exception as exc:  # one malformed span must not fail its batch (e.g. nesting depth)
                    record = SpanRecord((), [], [], span, repairs, f"{type(exc).__name__}: {exc}")
                yield record


def _span_record(
    span: Any,
    shadow: Any,
    service_name: str,
    scope_name: str | None,
    scope_version: str | None,
    resource_json: str,
    repairs: list[str],
    now_ns: int,
) -> SpanRecord:
    trace_id = span.trace_id
    span_id = span.span_id
    start_ns = span.start_time_unix_nano
    end_ns = span.end_time_unix_nano
    if start_ns == 0:
        start_ns = end_ns or now_ns
        repairs.append("start_time missing: set to end_time (or receive time)")
    if end_ns < start_ns:
        repairs.append("end_time before start_time: set to start_time")
        end_ns = start_ns
    start_us = start_ns // 1000
    name = span.name
    if "\x00" in name:
        name = clean_text(name, "span name", repairs)
    code, status_message = _status(span, shadow, repairs)
    attrs, values, entries, special = _read_attributes(span, shadow, repairs)
    if special:  # a converted column's key is present
        _convert_columns(attrs, values, repairs)
    trace_state = span.trace_state
    if trace_state and values[_WEIGHT] is None:
        values[_WEIGHT] = sampling.from_trace_state(trace_state)
    kind = span.kind
    flags = span.flags
    dropped_attrs = span.dropped_attributes_count
    dropped_events = span.dropped_events_count
    dropped_links = span.dropped_links_count
    if dropped_attrs > _INT4_MAX or dropped_events > _INT4_MAX or dropped_links > _INT4_MAX:
        dropped_attrs = int4(dropped_attrs, "dropped_attributes_count", repairs)
        dropped_events = int4(dropped_events, "dropped_events_count", repairs)
        dropped_links = int4(dropped_links, "dropped_links_count", repairs)
    row = (
        trace_id,
        span_id,
        span.parent_span_id or None,
        (clean_text(trace_state, "trace_state", repairs) if "\x00" in trace_state else trace_state) or None,
        start_us,
        end_ns // 1000,
        (end_ns - start_ns) / 1e6,
        name,
        kind if 0 <= kind <= _INT2_MAX else int2(kind, "kind", repairs),
        code if 0 <= code <= _INT2_MAX else int2(code, "status code", repairs),
        status_message,
        service_name,
        scope_name,
        scope_version,
        name,
        *values,
        (_joined(attrs, entries) if entries is not None else None)
        or (to_json(attrs, "span attributes", repairs) if attrs else "{}"),
        resource_json,
        flags if flags <= _INT4_MAX else signed32(flags),
        dropped_attrs,
        dropped_events,
        dropped_links,
    )
    for index in _LABELS:
        label = values[index]
        if label is not None and "\x00" in label:
            row = _replace_nul_columns(row, repairs)
            break
    span_events = span.events
    span_links = span.links
    if not span_events and not span_links:
        return SpanRecord(row, [], [], span, repairs)
    events = _event_rows(span_events, trace_id, span_id, start_us, start_ns, service_name, repairs)
    links = _link_rows(span_links, trace_id, span_id, start_us, repairs)
    return SpanRecord(row, events, links, span, repairs)


def _status(span: Any, shadow: Any, repairs: list[str]) -> tuple[int, str | None]:
    if shadow is None:
        status = span.status
        code, status_message = status.code, status.message or None
    else:
        status_entry = _STATUS_CACHE.get(shadow.status)
        if status_entry is None:
            status_entry = _status_entry(shadow.status)
        code, status_message = status_entry
    if status_message is not None and "\x00" in status_message:
        status_message = clean_text(status_message, "status message", repairs)
    return code, status_message


def _convert_columns(attrs: dict[str, Any], values: list[Any], repairs: list[str]) -> None:
    """The converted columns (ATTRIBUTE_COLUMNS order) from their attribute keys, each from the first key present;
    a key whose value converts losslessly leaves the jsonb when its column says so."""
    get = attrs.get
    # A span folded into another span of the same LLM call (processors.cost.dedup) keeps its token counts in
    # the attributes only: the token columns, sums and rollups count each call once.
    converted = _CONVERTED_FOLDED if _DUPLICATE_OF in attrs else _CONVERTED
    for index, keys, convert, moves, exact in converted:
        for key in keys:
            value = get(key)
            if value is not None:
                break
        else:
            continue
        if type(value) is exact:
            values[index] = value
            lossless = True
        else:
            values[index], lossless = convert(value, key, repairs)
        if lossless and key in moves:
            del attrs[key]


def _read_attributes(
    span: Any, shadow: Any, repairs: list[str]
) -> tuple[dict[str, Any], list[Any], dict[str, _Entry] | None, bool]:
    """(attributes for the jsonb, the text columns' values in an ``ATTRIBUTE_COLUMNS``-long list, the attributes'
    cache entries when read from wire bytes (their JSON members make the jsonb text), whether a key a converted
    column reads is present).

    One pass over the attributes, normally over their wire bytes (see ``_kv_entry``): no protobuf wrapper per
    attribute. A duplicate key keeps the last value, as a dict would.
    """
    attrs: dict[str, Any] = {}
    values: list[Any] = [None] * _N_COLUMNS
    if shadow is not None:
        cache_get = _KV_CACHE.get
        entries: dict[str, _Entry] = {}  # attrs' entries, for their JSON members
        moved = False  # a text column's attribute with a non-string value is in attrs (a later string must pop it)
        special = False
        for kv in shadow.attributes:
            entry = cache_get(kv)
            if entry is None:
                entry = _kv_entry(kv)
                if entry is None:  # not a plain scalar (or empty key, NUL in a hot text): the protobuf pass below
                    break
            key, item, slot, text, _ = entry
            if slot is None:
                attrs[key] = item
                entries[key] = entry
            elif slot < _N_COLUMNS:
                values[slot] = item
                if moved:
                    attrs.pop(key, None)  # an earlier duplicate that was not a string
            elif slot == _SPECIAL:
                attrs[key] = item
                entries[key] = entry
                special = True
            else:
                attrs[key] = item
                entries[key] = entry
                values[slot - _N_COLUMNS] = text
                moved = True
        else:
            return attrs, values, entries, special
        attrs = {}
        values = [None] * _N_COLUMNS
    # The protobuf pass. A non-empty ``string_value`` means the oneof holds a string (the common case): no
    # WhichOneof call.
    text_index = _TEXT_INDEX.get
    for kv in span.attributes:
        key = kv.key
        value = kv.value
        text = value.string_value
        if text or value.WhichOneof("value") == "string_value":
            i = text_index(key)
            if i is None:
                attrs[key] = text
                continue
            if "\x00" in text:
                text = clean_text(text, key, repairs)
            values[i] = text
            attrs.pop(key, None)  # an earlier duplicate that was not a string
            continue
        item = any_value(value)
        attrs[key] = item
        i = text_index(key)
        if i is not None:
            values[i] = _text(item)
    return attrs, values, None, True


def _event_rows(
    span_events: Any,
    trace_id: bytes,
    span_id: bytes,
    start_us: int,
    start_ns: int,
    service_name: str,
    repairs: list[str],
) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []
    for index, event in enumerate(span_events):
        event_attrs = attributes_dict(event.attributes)
        exc: list[str | None] = [None, None, None]
        if event.name == "exception":
            for i, exc_key in enumerate(_EXCEPTION_KEYS):
                exc_value = event_attrs.get(exc_key)
                if isinstance(exc_value, str):
                    exc[i] = clean_text(exc_value, exc_key, repairs)
                    del event_attrs[exc_key]
        events.append(
            (
                trace_id,
                span_id,
                start_us,
                index,
                (event.time_unix_nano or start_ns) // 1000,
                clean_text(event.name, "event name", repairs),
                service_name,
                exc[0],
                exc[1],
                exc[2],
                to_json(event_attrs, "event attributes", repairs) if event_attrs else "{}",
                int4(event.dropped_attributes_count, "event dropped_attributes_count", repairs),
            )
        )
    return events


def _link_rows(
    span_links: Any, trace_id: bytes, span_id: bytes, start_us: int, repairs: list[str]
) -> list[tuple[Any, ...]]:
    links: list[tuple[Any, ...]] = []
    for index, link in enumerate(span_links):
        link_attrs = attributes_dict(link.attributes)
        links.append(
            (
                trace_id,
                span_id,
                start_us,
                index,
                link.trace_id,
                link.span_id,
                clean_text(link.trace_state, "link trace_state", repairs) or None,
                signed32(link.flags),
                to_json(link_attrs, "link attributes", repairs) if link_attrs else "{}",
                int4(link.dropped_attributes_count, "link dropped_attributes_count", repairs),
            )
        )
    return links


def _replace_nul_columns(row: tuple[Any, ...], repairs: list[str]) -> tuple[Any, ...]:
    return tuple(clean_text(v, "span column", repairs) if isinstance(v, str) and "\x00" in v else v for v in row)

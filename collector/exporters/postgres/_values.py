"""OTLP AnyValue/KeyValue to Python and JSON text for jsonb, repairing what PostgreSQL would reject.

PostgreSQL rejects NUL (U+0000) in text and jsonb, and jsonb rejects NaN/Infinity. Such values are repaired
(NUL stripped, non-finite numbers stored as the strings "NaN", "Infinity", "-Infinity") and every repair is
reported to the caller's ``repairs`` list, which the writer records in the ``quarantine`` table (action
``repaired``).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ItemRecord", "any_value", "attributes_dict", "clean_text", "dumps", "int2", "int4", "signed32", "to_json"]

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _c_dumps() -> Callable[[Any], str] | None:
    """``_encoder.encode`` without building a new C encoder on every call (half the cost for a small dict).

    The same C encoder ``encode`` builds, without the cycle check: values come from protobuf messages and
    cannot be cyclic (deep nesting still raises RecursionError).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain encoder
        return None
    iterencode = make(None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return dumps


_dumps: Callable[[Any], str] = _c_dumps() or _encoder.encode
# Compact JSON text of plain values (no NaN: raises ValueError).
dumps = _dumps


def any_value(value: Any) -> Any:
    """An ``AnyValue`` as plain Python (bytes as base64 text, as the OTLP/JSON mapping does)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributes_dict(key_values: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


def resource_columns(resource: Any) -> tuple[dict[str, Any], str, str, list[str]]:
    """(attributes, ``service.name`` as text, the attributes as JSON, the repairs made): what every row of a
    resource's items shares."""
    repairs: list[str] = []
    attributes = attributes_dict(resource.attributes)
    service = attributes.get("service.name")
    if isinstance(service, str):
        service_name = clean_text(service, "service.name", repairs)
    else:
        service_name = "" if service is None else to_json(service, "service.name", [])
    return attributes, service_name, to_json(attributes, "resource attributes", repairs), repairs


def clean_text(text: str, field: str, repairs: list[str]) -> str:
    """``text`` without NUL characters (PostgreSQL text cannot hold them)."""
    if "\x00" in text:
        repairs.append(f"NUL characters removed from {field}")
        return text.replace("\x00", "")
    return text


def _sanitize(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k.replace("\x00", ""): _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


def to_json(value: Any, field: str, repairs: list[str]) -> str:
    """JSON text that jsonb accepts; repairs NUL characters and non-finite numbers."""
    try:
        text = _dumps(value)
    except ValueError:  # NaN or Infinity somewhere
        repairs.append(f"non-finite numbers stored as strings in {field}")
        return to_json(_sanitize(value), field, repairs)
    if "\\u0000" in text:
        cleaned = _dumps(_sanitize(value))
        if cleaned != text:
            repairs.append(f"NUL characters removed from {field}")
        return cleaned
    return text


_INT2_MAX = 2**15 - 1
_INT4_MAX = 2**31 - 1


def int2(value: int, field: str, repairs: list[str]) -> int:
    """A protobuf enum (int32) for a smallint column: binary COPY would silently wrap larger values."""
    if -_INT2_MAX - 1 <= value <= _INT2_MAX:
        return value
    repairs.append(f"{field} {value} beyond smallint: clamped")
    return _INT2_MAX if value > 0 else -_INT2_MAX - 1


def int4(value: int, field: str, repairs: list[str]) -> int:
    """A uint32 count for an integer column, clamped (binary COPY would silently wrap)."""
    if value <= _INT4_MAX:
        return value
    repairs.append(f"{field} {value} beyond integer: clamped")
    return _INT4_MAX


def signed32(value: int) -> int:
    """fixed32 bit flags stored losslessly in an integer column (two's complement)."""
    return value - 2**32 if value > _INT4_MAX else value


@dataclass
class ItemRecord:
    """A metric data point's or log record's row, with the item it came from (for quarantine and repairs)."""

    row: tuple[Any, ...]
    source: Any  # the Metric (its data point's parent) or the LogRecord message
    repairs: list[str] = field(default_factory=list)
    trace_id: bytes | None = None
    span_id: bytes | None = None
    # Set when the item could not be turned into a row at all: it goes to the quarantine with this reason.
    failure: str | None = None

    def item(self) -> bytes:
        return bytes(self.source.SerializeToString())

"""OTLP ``KeyValue``/``AnyValue`` <-> python values, shared by the enrichment processors' collector faces.

The enrichment logic is written once over python attribute maps (``Mapping[str, object]``); these
helpers let the collector faces read only the keys they need from a protobuf ``repeated KeyValue`` and
write results back in place, without converting whole messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "any_value_to_python",
    "attributes_to_dict",
    "get_attribute",
    "pick_attributes",
    "python_to_any_value",
    "set_attribute",
]


def any_value_to_python(value: AnyValue) -> object:
    """The python value of an ``AnyValue``: str/bool/int/float/bytes, list, dict, or None when empty."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def python_to_any_value(value: object, out: AnyValue | None = None) -> AnyValue:
    """Fill ``out`` (or a new ``AnyValue``) from a python value, with the OTLP exporter's type mapping."""
    target = AnyValue() if out is None else out
    target.Clear()
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            python_to_any_value(v, target.kvlist_value.values.add(key=str(k)).value)
    elif isinstance(value, Sequence):
        array = target.array_value
        array.SetInParent()
        for v in value:
            python_to_any_value(v, array.values.add())
    elif value is not None:
        raise TypeError(f"cannot encode {type(value).__name__} as an OTLP AnyValue")
    return target


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, object]:
    """All attributes as a dict (a later duplicate key wins, as in the SDK)."""
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


def pick_attributes(attributes: Iterable[KeyValue], keys: frozenset[str]) -> dict[str, object]:
    """Only the attributes named in ``keys``: the cheap read for a processor that needs a few of many."""
    return {kv.key: any_value_to_python(kv.value) for kv in attributes if kv.key in keys}


def get_attribute(attributes: Iterable[KeyValue], key: str) -> object:
    """The python value of ``key``, or None when absent."""
    found: object = None
    for kv in attributes:
        if kv.key == key:
            found = any_value_to_python(kv.value)
    return found


def set_attribute(attributes: RepeatedCompositeFieldContainer[KeyValue], key: str, value: object) -> None:
    """Upsert ``key`` in a protobuf ``repeated KeyValue`` in place (duplicates of the key are removed)."""
    first: KeyValue | None = None
    duplicates: list[int] = []
    for i, kv in enumerate(attributes):
        if kv.key == key:
            if first is None:
                first = kv
            else:
                duplicates.append(i)
    for i in reversed(duplicates):
        del attributes[i]
    if first is None:
        first = attributes.add(key=key)
    python_to_any_value(value, first.value)

"""The ``attributes`` processor: insert/update/upsert/delete/hash/extract/convert item attributes.

Items are spans, log records and metric data points. Config and semantics follow upstream contrib's
``attributesprocessor`` (and its ``attraction`` package, which the ``resource`` processor shares): ``actions``
apply in order to every item that passes ``include``/``exclude``.

* ``insert`` only when the key is absent; ``update`` only when present; ``upsert`` either way. The value comes
  from ``value``, ``from_attribute`` (no-op if that attribute is absent) or ``from_context``.
* ``delete``/``hash`` act on ``key`` and/or every key matching ``pattern``. ``hash`` is SHA2-256 in hex, as
  upstream since v0.75 (SHA1 is deprecated there), over the same bytes upstream hashes.
* ``extract`` searches ``key``'s string value with ``pattern`` and upserts each named group as an attribute.
* ``convert`` changes the value's type to ``converted_type`` (int, double, string) when it can.

``from_context`` names request metadata (``metadata.*``, ``auth.*``, ``client.address``); pipeline consumers
here receive no request context, so it resolves to "absent" and the action is a no-op (as upstream does for a
missing key).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from processors._attributes import any_value_to_python, python_to_any_value
from processors._matching import (
    MatchProperties,
    compile_matcher,
    matched_items,
    scalar_string,
    validate_properties,
)
from processors.pipeline import Consumer, CreateSettings, ProcessorFactory, Request, Signal, SyncProcessor

__all__ = [
    "ActionConfig",
    "AttributesConfig",
    "AttributesProcessor",
    "apply_actions",
    "compile_actions",
    "factories",
    "validate_actions",
]

TYPE = "attributes"

ActionName = Literal["insert", "update", "upsert", "delete", "hash", "extract", "convert"]
ConvertedType = Literal["int", "double", "string"]

_VALUE_ACTIONS = frozenset({"insert", "update", "upsert"})

Attributes: TypeAlias = RepeatedCompositeFieldContainer[KeyValue]


@dataclass
class ActionConfig:
    """One entry of ``actions`` (upstream ``attraction.ActionKeyValue``)."""

    key: str = ""  # the attribute acted on (for extract: the one the pattern reads)
    value: Any = None  # the value insert/update/upsert set
    pattern: str = ""  # extract: a regexp whose named groups become attributes
    from_attribute: str = ""  # insert/update/upsert: copy this attribute's value instead (no-op when absent)
    from_context: str = ""  # request metadata (metadata.*, auth.*); none reaches processors here: a no-op
    converted_type: ConvertedType | None = None  # convert: the type to convert the value to
    # insert (if absent), update (if present), upsert, delete, hash (SHA-256 of the value), extract or convert.
    action: ActionName | None = None


@dataclass
class AttributesConfig:
    actions: list[ActionConfig] = field(default_factory=list)  # applied in order to each matching item
    include: MatchProperties | None = None  # act only on the items that match
    exclude: MatchProperties | None = None  # do not act on the items that match

    def validate(self) -> list[str]:
        errors = validate_actions("actions", self.actions)
        if not self.actions:
            errors.append("actions: at least one action must be configured")
        for name in ("include", "exclude"):
            props = getattr(self, name)
            if props is not None:
                errors.extend(validate_properties(name, props))
        return errors


def validate_actions(where: str, actions: list[ActionConfig]) -> list[str]:
    """Upstream's ``attraction.NewAttrProc`` checks, each naming ``where[i].field``."""
    errors: list[str] = []
    for i, a in enumerate(actions):
        at = f"{where}[{i}]"
        if a.action is None:
            errors.append(f"{at}.action: missing; one of {', '.join(_BUILDERS)}")
            continue
        if a.action in _VALUE_ACTIONS:
            if not a.key:
                errors.append(f"{at}.key: missing; required for action {a.action!r}")
            sources = sum((a.value is not None, bool(a.from_attribute), bool(a.from_context)))
            if sources != 1:
                errors.append(
                    f"{at}: action {a.action!r} needs exactly one of value, from_attribute, from_context"
                    f" ({sources} given)"
                )
            if a.pattern:
                errors.append(f"{at}.pattern: not allowed for action {a.action!r}")
            if a.value is not None and not _is_attribute_value(a.value):
                errors.append(f"{at}.value: expected a string, number, bool or a list/map of them")
        elif a.action in ("delete", "hash"):
            if not a.key and not a.pattern:
                errors.append(f"{at}: action {a.action!r} needs key or pattern")
            _check_regex(f"{at}.pattern", a.pattern, errors)
            _no_value_source(at, a, errors)
        elif a.action == "extract":
            if not a.key:
                errors.append(f"{at}.key: missing; required for action 'extract'")
            if not a.pattern:
                errors.append(f"{at}.pattern: missing; required for action 'extract'")
            elif _check_regex(f"{at}.pattern", a.pattern, errors) and not re.compile(a.pattern).groupindex:
                errors.append(f"{at}.pattern: needs at least one named group such as (?P<name>...)")
            _no_value_source(at, a, errors)
        elif a.action == "convert":
            if not a.key:
                errors.append(f"{at}.key: missing; required for action 'convert'")
            if a.converted_type is None:
                errors.append(f"{at}.converted_type: missing; one of int, double, string")
            _no_value_source(at, a, errors)
        if a.converted_type is not None and a.action != "convert":
            errors.append(f"{at}.converted_type: only valid for action 'convert'")
    return errors


def _no_value_source(at: str, a: ActionConfig, errors: list[str]) -> None:
    if a.value is not None or a.from_attribute or a.from_context:
        errors.append(f"{at}: value, from_attribute and from_context are not allowed for action {a.action!r}")


def _check_regex(where: str, pattern: str, errors: list[str]) -> bool:
    if not pattern:
        return True
    try:
        re.compile(pattern)
    except re.error as exc:
        errors.append(f"{where}: invalid regexp {pattern!r}: {exc}")
        return False
    return True


def _is_attribute_value(value: Any) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_is_attribute_value(v) for v in value)
    if isinstance(value, dict):
        return all(_is_attribute_value(v) for v in value.values())
    return False


# --- the action engine ------------------------------------------------------------------------------------

_Action = Callable[[Attributes], None]


def _index(attributes: Attributes, key: str) -> int:
    for i, kv in enumerate(attributes):
        if kv.key == key:
            return i
    return -1


def _value_action(a: ActionConfig) -> _Action:
    key, kind = a.key, a.action
    literal: AnyValue | None = python_to_any_value(a.value) if a.value is not None else None
    source = a.from_attribute

    def act(attributes: Attributes) -> None:
        if literal is not None:
            value: AnyValue = literal
        elif source:
            j = _index(attributes, source)
            if j < 0:
                return
            value = attributes[j].value
        else:  # from_context: no request context reaches pipeline processors (see module docstring)
            return
        i = _index(attributes, key)
        if i >= 0:
            if kind != "insert":
                attributes[i].value.CopyFrom(value)
        elif kind != "update":
            attributes.add(key=key).value.CopyFrom(value)

    return act


def _keys_matching(a: ActionConfig) -> Callable[[str], bool]:
    pattern = re.compile(a.pattern) if a.pattern else None
    key = a.key

    def match(k: str) -> bool:
        return (bool(key) and k == key) or (pattern is not None and pattern.search(k) is not None)

    return match


def _delete_action(a: ActionConfig) -> _Action:
    match = _keys_matching(a)

    def act(attributes: Attributes) -> None:
        for i in range(len(attributes) - 1, -1, -1):
            if match(attributes[i].key):
                del attributes[i]

    return act


def hash_value(value: AnyValue) -> str:
    """SHA2-256 hex of the bytes upstream hashes: UTF-8 text, one byte for a bool, 8 little-endian bytes for
    int/double; other types hash to the empty string, as upstream."""
    kind = value.WhichOneof("value")
    data: bytes
    if kind == "string_value":
        data = value.string_value.encode()
    elif kind == "bool_value":
        data = b"\x01" if value.bool_value else b"\x00"
    elif kind == "int_value":
        data = struct.pack("<q", value.int_value)
    elif kind == "double_value":
        data = struct.pack("<d", value.double_value)
    else:
        data = b""
    return hashlib.sha256(data).hexdigest() if data else ""


def _hash_action(a: ActionConfig) -> _Action:
    match = _keys_matching(a)

    def act(attributes: Attributes) -> None:
        for kv in attributes:
            if match(kv.key):
                kv.value.string_value = hash_value(kv.value)

    return act


def _extract_action(a: ActionConfig) -> _Action:
    key = a.key
    pattern = re.compile(a.pattern)
    names = list(pattern.groupindex)

    def act(attributes: Attributes) -> None:
        i = _index(attributes, key)
        if i < 0 or attributes[i].value.WhichOneof("value") != "string_value":
            return
        m = pattern.search(attributes[i].value.string_value)
        if m is None:
            return
        for name in names:
            group = m.group(name)
            j = _index(attributes, name)
            kv = attributes[j] if j >= 0 else attributes.add(key=name)
            kv.value.string_value = group or ""

    return act


def _as_string(value: AnyValue) -> str:
    text = scalar_string(value)
    if text is not None:
        return text
    if value.WhichOneof("value") is None:
        return ""
    return json.dumps(any_value_to_python(value), separators=(",", ":"), default=str)


def convert_value(value: AnyValue, to: str) -> None:
    """Upstream ``convertValue``: convert in place when possible, otherwise leave unchanged."""
    kind = value.WhichOneof("value")
    if to == "string":
        if kind != "string_value":
            value.string_value = _as_string(value)
    elif to == "int":
        if kind == "double_value":
            d = value.double_value
            if math.isfinite(d):
                value.int_value = int(d)
        elif kind == "bool_value":
            value.int_value = int(value.bool_value)
        elif kind == "string_value":
            with contextlib.suppress(ValueError):
                value.int_value = int(value.string_value, 10)
    elif to == "double":
        if kind == "int_value":
            value.double_value = float(value.int_value)
        elif kind == "bool_value":
            value.double_value = 1.0 if value.bool_value else 0.0
        elif kind == "string_value":
            with contextlib.suppress(ValueError):
                value.double_value = float(value.string_value)


def _convert_action(a: ActionConfig) -> _Action:
    key, to = a.key, a.converted_type or "string"

    def act(attributes: Attributes) -> None:
        i = _index(attributes, key)
        if i >= 0:
            convert_value(attributes[i].value, to)

    return act


_BUILDERS: dict[str, Callable[[ActionConfig], _Action]] = {
    "insert": _value_action,
    "update": _value_action,
    "upsert": _value_action,
    "delete": _delete_action,
    "hash": _hash_action,
    "extract": _extract_action,
    "convert": _convert_action,
}


def compile_actions(actions: Iterable[ActionConfig]) -> list[_Action]:
    """Closures over a validated action list; each changes a ``repeated KeyValue`` in place."""
    return [_BUILDERS[a.action](a) for a in actions if a.action is not None]


def apply_actions(compiled: list[_Action], attributes: Attributes) -> None:
    for act in compiled:
        act(attributes)


# --- the processor ----------------------------------------------------------------------------------------


class AttributesProcessor(SyncProcessor):
    def __init__(self, settings: CreateSettings, config: AttributesConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._actions = compile_actions(config.actions)
        # Matchers are compiled once; which pair is used depends on the request's signal.
        self._matchers = {
            signal: (compile_matcher(signal, config.include), compile_matcher(signal, config.exclude))
            for signal in Signal
        }

    def process(self, signal: Signal, request: Request) -> bool:
        actions = self._actions
        items = matched_items(signal, request, *self._matchers[signal])
        if signal is Signal.METRICS:
            items = (point for metric in items for point in _data_points(metric))
        for item in items:
            for act in actions:
                act(item.attributes)
        return True


def _data_points(metric: Metric) -> Any:
    kind = metric.WhichOneof("data")
    return () if kind is None else getattr(metric, kind).data_points


factories = (ProcessorFactory(type=TYPE, config_type=AttributesConfig, create=AttributesProcessor),)

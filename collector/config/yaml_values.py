"""Config values and types as a user writes them in YAML: ``30s`` for a duration, ``list[string]``, ``map[string]``,
``—`` for no default. Used by the configuration reference (``collector.config.reference``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from collector.config.field_docs import type_hints
from processors.pipeline import ComponentID, Duration

__all__ = [
    "NONE",
    "default_instance",
    "default_text",
    "format_duration",
    "is_dataclass_type",
    "optional_args",
    "plain",
    "yaml_type",
]

NONE = "—"  # shown where a key has no default


def format_duration(seconds: float) -> str:
    """Seconds -> Go-style duration text the decoder reads back: 0.2 -> "200ms", 300 -> "5m", 90 -> "1m30s"."""
    sign = "-" if seconds < 0 else ""
    ns = round(abs(seconds) * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("us", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_trim(ns / size)}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if rest:
        parts.append(f"{_trim(rest / 1e9)}s")
    return sign + "".join(parts)


def _trim(number: float) -> str:
    text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def optional_args(tp: Any) -> tuple[bool, list[Any]]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = list(typing.get_args(tp))
        return type(None) in args, [a for a in args if a is not type(None)]
    return False, [tp]


def is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def yaml_type(tp: Any) -> str:
    if tp is Duration:
        return "duration"
    if tp is Any or tp is object:
        return "any"
    if tp is ComponentID:
        return "component id"
    _, args = optional_args(tp)
    if len(args) > 1:
        return " or ".join(yaml_type(a) for a in args)
    if args[0] is not tp:  # `X | None`: written as X (null is the default or leaves it unset)
        return yaml_type(args[0])
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + "|".join(_literal(a) for a in typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        item = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return "list of " + (yaml_type(item[0]) if item else "any")
    if origin in (dict, Mapping):
        args2 = typing.get_args(tp)
        return "map of " + (yaml_type(args2[1]) if len(args2) == 2 else "any")
    if is_dataclass_type(tp):
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + "|".join(_literal(m.value) for m in tp)
    if isinstance(tp, type):
        return {"str": "string", "int": "int", "float": "float", "bool": "bool"}.get(tp.__name__, tp.__name__)
    return str(tp)


def _literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else plain(value)


def plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value(value: Any, tp: Any) -> Any:
    """A default as plain YAML data (durations as text), for rendering containers."""
    if value is None:
        return None
    _, args = optional_args(tp)
    tp = args[0] if len(args) == 1 else Any
    if tp is Duration and isinstance(value, int | float) and not isinstance(value, bool):
        return format_duration(float(value))
    origin = typing.get_origin(tp)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ComponentID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Only what differs from the item type's own defaults (those are in the rows below it).
        hints = type_hints(type(value))
        base = default_instance(type(value))
        return {
            f.name: _value(getattr(value, f.name), hints.get(f.name, Any))
            for f in dataclasses.fields(value)
            if base is None or getattr(value, f.name) != getattr(base, f.name)
        }
    if isinstance(value, list | tuple | set | frozenset):
        item = [a for a in typing.get_args(tp) if a is not Ellipsis] if origin in (list, tuple) else []
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_value(v, item[0] if item else Any) for v in items]
    if isinstance(value, dict):
        args2 = typing.get_args(tp) if origin is dict else ()
        return {str(k): _value(v, args2[1] if len(args2) == 2 else Any) for k, v in value.items()}
    return value


def default_text(value: Any, tp: Any, has_default: bool) -> str:
    if not has_default:
        return "required"
    if value is None:
        return NONE
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        optional, _ = optional_args(tp)
        return "on" if optional else ""
    data = _value(value, tp)
    if isinstance(data, str):
        return f"`{data}`" if data else '`""`'
    if isinstance(data, list | dict):
        return f"`{json.dumps(data, ensure_ascii=False)}`"
    return f"`{plain(data)}`"


def default_instance(cls: type) -> Any:
    try:
        return cls()
    except TypeError:
        return None

"""Strict decoding of YAML values into component config dataclasses.

Like the upstream Collector's confmap (``ErrorUnused``), every key must be a field: an unknown key is an
error that names its full path and, for a near-miss, the key that was probably meant. Decoding starts from
the default instance (the dataclass's defaults, or the parent's default for a nested field) and overrides
only the keys given, so an omitted key keeps its documented default. A value outside the range declared on its
field (``collector.confmap.bounds``) is an error naming its path. All problems are collected, never just the
first.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union

from collector.confmap.bounds import field_bounds
from processors.pipeline import ComponentID, Duration

__all__ = ["decode", "did_you_mean", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Go-style duration ("200ms", "5s", "1m30s") or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '5s' or '200ms', got a bool")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '5s' or '200ms', got {_type_name(value)}")
    text = value.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("expected a duration such as '5s' or '200ms', got an empty string")
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"expected a duration such as '5s', '200ms' or '1m30s', got {value!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"expected a duration such as '5s', '200ms' or '1m30s', got {value!r}")
    return sign * total


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near-miss, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool ({value!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"string {value!r}"
    return f"{type(value).__name__} ({value!r})"


def _describe(tp: Any) -> str:
    if tp is Duration:
        return "a duration"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a bool"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=False)


def decode(tp: Any, value: Any, path: str, errors: list[str], default: Any = dataclasses.MISSING) -> Any:
    """Decode ``value`` into type ``tp``; append ``"path: message"`` to ``errors`` for every problem."""
    if tp is Any or tp is object:
        return value
    if tp is Duration:
        try:
            return Duration(parse_duration(value))
        except ValueError as exc:
            errors.append(f"{path}: {exc}")
            return default if default is not dataclasses.MISSING else Duration(0.0)
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) == 1 and dataclasses.is_dataclass(args[0]):
                # `grpc:` with nothing under it enables the section with its defaults, as upstream does.
                return _decode_dataclass(typing.cast(type, args[0]), {}, path, errors, default)
            return None
        if len(args) == 1:
            return decode(args[0], value, path, errors, default)
        trial: list[str] = []
        for arg in args:
            trial = []
            result = decode(arg, value, path, trial, default)
            if not trial:
                return result
        errors.append(f"{path}: expected {' or '.join(_describe(a) for a in args)}, got {_type_name(value)}")
        return default
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in allowed)):
            return value
        hint = did_you_mean(str(value), [str(a) for a in allowed]) if isinstance(value, str) else ""
        errors.append(f"{path}: expected {_describe(tp)}, got {_type_name(value)}{hint}")
        return default if default is not dataclasses.MISSING else allowed[0]
    if origin is list or origin is tuple:
        if value is None:
            return [] if origin is list else ()
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {_type_name(value)}")
            return default if default is not dataclasses.MISSING else []
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [decode(item_tp, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping, got {_type_name(value)}")
            return default if default is not dataclasses.MISSING else {}
        _, val_tp = typing.get_args(tp) or (str, Any)
        return {str(k): decode(val_tp, v, f"{path}.{k}", errors) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping, got {_type_name(value)}")
            return default if default is not dataclasses.MISSING else _default_instance(tp, path, errors)
        return _decode_dataclass(tp, value, path, errors, default)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            names = [str(m.value) for m in tp]
            errors.append(f"{path}: expected one of {', '.join(names)}, got {_type_name(value)}")
            return default
    if tp is ComponentID:
        try:
            return ComponentID.parse(value)
        except ValueError as exc:
            errors.append(f"{path}: {exc}")
            return default
    return _decode_scalar(tp, value, path, errors, default)


def _decode_scalar(tp: Any, value: Any, path: str, errors: list[str], default: Any) -> Any:
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif tp is str:
        # YAML reads `version: 1.0` as a float; the Collector's decoder would take it as text, so do we.
        ok = isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))
        if ok:
            value = str(value)
    else:
        ok = isinstance(value, tp)
    if ok:
        return value
    errors.append(f"{path}: expected {_describe(tp)}, got {_type_name(value)}")
    return default if default is not dataclasses.MISSING else None


def _default_instance(cls: type, path: str, errors: list[str]) -> Any:
    try:
        return cls()
    except TypeError as exc:  # a config dataclass must be constructible with no arguments
        errors.append(f"{path}: config type {cls.__name__} has no default: {exc}")
        return None


def _decode_dataclass(cls: type, value: dict[Any, Any], path: str, errors: list[str], default: Any) -> Any:
    # A class marked ``decode_fresh`` starts from its own defaults, not the parent's default instance: the
    # OTLP receiver's `protocols` turns on only the protocols written under it, as upstream does.
    fresh = getattr(cls, "decode_fresh", False)
    base: Any = default if isinstance(default, cls) and not fresh else _default_instance(cls, path, errors)
    if base is None:
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    changes: dict[str, Any] = {}
    for key, raw in value.items():
        key = str(key)
        where = f"{path}.{key}" if path else key
        if key not in fields:
            errors.append(f"{where}: unknown key{did_you_mean(key, fields)}")
            continue
        before = len(errors)
        decoded = changes[key] = decode(hints[key], raw, where, errors, getattr(base, key))
        bounds = field_bounds(fields[key])
        if bounds is not None and decoded is not None and len(errors) == before:
            problem = bounds.problem(decoded)
            if problem:
                errors.append(f"{where}: {problem}")
    return dataclasses.replace(base, **changes) if changes else base

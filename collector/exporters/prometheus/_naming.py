"""OTLP → Prometheus names, following the OpenTelemetry compatibility spec.

specification/compatibility/prometheus_and_openmetrics.md: invalid characters become ``_`` (runs collapsed),
units
become full words appended as suffixes (``s`` → ``_seconds``, ``By`` → ``_bytes``, ``{packet}`` dropped,
``m/s`` →
``_meters_per_second``), a gauge with unit ``1`` gets ``_ratio``, a monotonic sum gets ``_total``. Label
names are
sanitised the same way; keys that collide after sanitising have their values joined with ``;`` in key order.
Results are cached: the same few metric names are translated for every request.
"""

from __future__ import annotations

import base64
import json
import re
from functools import lru_cache
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")

# UCUM-ish units the OTel semantic conventions use, as the words Prometheus conventions expect.
UNIT_WORDS: dict[str, str] = {
    # time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # misc
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}

# The denominator of "X/Y" units, singular ("_per_second").
PER_UNIT_WORDS: dict[str, str] = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


def sanitize_name(name: str) -> str:
    """A valid Prometheus metric name: invalid runs → ``_``, no double ``_``, no leading digit."""
    out = _UNDERSCORES.sub("_", _INVALID_NAME.sub("_", name))
    if not out:
        return "_"
    if out[0].isdigit():
        out = "_" + out
    return out


@lru_cache(maxsize=4096)
def sanitize_label(name: str) -> str:
    """A valid label name; a leading digit gets ``key_``, a leading ``_`` gets ``key``.

    Runs of ``_`` collapse first, so an attribute ``__x`` becomes ``key_x``: Prometheus drops ``__`` labels
    after
    relabelling, and the attribute must not silently disappear.
    """
    out = _UNDERSCORES.sub("_", _INVALID_LABEL.sub("_", name)) if name else "key_empty"
    if out[0].isdigit():
        out = "key_" + out
    elif out.startswith("_") and not out.startswith("__"):
        out = "key" + out
    return out


def unit_suffix(unit: str, *, gauge: bool) -> str:
    """The name suffix (without leading ``_``) for an OTel unit; ``""`` when there is none."""
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if gauge else ""
    main, _, per = unit.partition("/")
    words = []
    if main:
        words.append(UNIT_WORDS.get(main, main))
    if per:
        words.append("per")
        words.append(PER_UNIT_WORDS.get(per, per))
    return sanitize_name("_".join(w for w in words if w)).strip("_")


@lru_cache(maxsize=4096)
def metric_name(name: str, unit: str, *, kind: str, namespace: str = "", add_suffixes: bool = True) -> str:
    """The Prometheus family name for an OTLP metric.

    ``kind`` is ``counter``, ``gauge``, ``histogram`` or ``summary``. A counter's family name includes
    ``_total``
    (the text format's sample name); the OpenMetrics renderer strips it for TYPE/HELP lines.
    """
    base = sanitize_name(f"{namespace}_{name}" if namespace else name).strip("_") or "_"
    if base[0].isdigit():
        base = "_" + base
    if not add_suffixes:
        return base
    suffix = unit_suffix(unit, gauge=kind == "gauge")
    if kind == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]
    if suffix and not base.endswith("_" + suffix) and base != suffix:
        base = f"{base}_{suffix}"
    if kind == "counter":
        base += "_total"
    return base


def any_value_text(value: AnyValue) -> str:
    """An attribute value as a label value (arrays and maps as JSON, as upstream does)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return format_float(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind is None:
        return ""
    return json.dumps(_plain(value), separators=(",", ":"))


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def format_float(v: float) -> str:
    """Shortest round-tripping text, with Prometheus's spellings of the special values."""
    if v != v:
        return "NaN"
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def format_le(v: float) -> str:
    """Bucket bounds in OpenMetrics' canonical float form (``1.0``, ``0.005``, ``+Inf``)."""
    if v == float("inf"):
        return "+Inf"
    return repr(float(v))


def escape_label_value(v: str) -> str:
    if "\\" in v or '"' in v or "\n" in v:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return v


def escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def label_text(pairs: list[tuple[str, str]]) -> str:
    """``a="x",b="y"`` from raw (key, value) pairs: sanitise names, merge collisions with ``;``, sort, escape.

    Empty values are dropped: Prometheus treats an empty label as an absent one.
    """
    merged: dict[str, list[tuple[str, str]]] = {}
    for key, value in pairs:
        merged.setdefault(sanitize_label(key), []).append((key, value))
    parts = []
    for name in sorted(merged):
        entries = merged[name]
        # Later pairs override earlier ones with the same raw key (attributes over resource over const
        # labels).
        by_key = dict(entries)
        value = ";".join(by_key[k] for k in sorted(by_key)) if len(by_key) > 1 else entries[-1][1]
        if value:
            parts.append(f'{name}="{escape_label_value(value)}"')
    return ",".join(parts)

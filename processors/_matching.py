"""The Collector's legacy ``include``/``exclude`` match properties, compiled once into predicates.

Shared by ``attributes`` (which items an action list applies to) and ``filter`` (which items are dropped).
The semantics follow upstream's ``internal/filter`` packages: every property that is set must match (AND);
within a list of names any entry may match (OR); every listed attribute/resource entry must be present and
match (AND); an attribute entry without ``value`` only requires the key to exist. ``strict`` compares exactly
(with the value's type), ``regexp`` searches the string form with a regular expression (Go's RE2 syntax is
close enough to Python's for the patterns people write).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.pdata import SIGNALS, Request, Signal

__all__ = [
    "KeyValueMatch",
    "LibraryMatch",
    "LogMatchProperties",
    "LogMatcher",
    "MatchProperties",
    "Matcher",
    "MetricMatchProperties",
    "MetricMatcher",
    "SeverityNumberMatch",
    "SpanMatcher",
    "any_value_string",
    "compile_log_matcher",
    "compile_matcher",
    "compile_metric_matcher",
    "compile_span_matcher",
    "go_float_string",
    "matched_items",
    "parse_severity_number",
    "scalar_string",
    "validate_log_properties",
    "validate_properties",
]

MatchType = Literal["strict", "regexp"]

SERVICE_NAME = "service.name"

# Severity names accepted for ``severity_number.min`` (the log data model's short names and the enum names).
_SEVERITY_NAMES: dict[str, int] = {}
for _i, _name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")):
    for _j in range(4):
        _num = _i * 4 + _j + 1
        _suffix = "" if _j == 0 else str(_j + 1)
        _SEVERITY_NAMES[f"{_name}{_suffix}"] = _num
        _SEVERITY_NAMES[f"SEVERITY_NUMBER_{_name}{_suffix}"] = _num

_SPAN_KINDS = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}


@dataclass
class KeyValueMatch:
    """``{key, value}``: ``value`` omitted means only the key has to exist."""

    key: str = ""  # attribute key that must be present
    value: Any = None  # value it must have (a regexp with match_type regexp); omitted: any value


@dataclass
class LibraryMatch:
    """Instrumentation scope ``{name, version}``; ``version`` omitted matches any version."""

    name: str = ""  # instrumentation scope name (a regexp with match_type regexp)
    version: str | None = None  # scope version; omitted: any version


@dataclass
class SeverityNumberMatch:
    """Log records at or above ``min`` (a number or a name such as ``INFO``) match."""

    min: Any = 0  # lowest severity that matches: a number (1-24) or a name such as INFO or WARN2
    match_undefined: bool = False  # records without a severity number match too


@dataclass
class MatchProperties:
    """Upstream ``filterconfig.MatchProperties``: spans (and logs/metrics for the attributes processor)."""

    match_type: MatchType | None = None  # strict (equal strings) or regexp; required when any list is set
    services: list[str] = field(default_factory=list)  # service.name values, any of them
    span_names: list[str] = field(default_factory=list)  # span names, any of them
    span_kinds: list[str] = field(default_factory=list)  # SPAN_KIND_SERVER, CLIENT... (always strict)
    log_bodies: list[str] = field(default_factory=list)  # log record bodies, any of them
    log_severity_texts: list[str] = field(default_factory=list)  # log severity texts, any of them
    log_severity_number: SeverityNumberMatch | None = None  # log records at or above a severity
    metric_names: list[str] = field(default_factory=list)  # metric names, any of them
    attributes: list[KeyValueMatch] = field(default_factory=list)  # item attributes, all of them
    resources: list[KeyValueMatch] = field(default_factory=list)  # resource attributes, all of them
    libraries: list[LibraryMatch] = field(default_factory=list)  # instrumentation scopes, any of them


@dataclass
class MetricMatchProperties:
    """Upstream ``filterconfig.MetricMatchProperties`` (the ``expr`` match type is not supported)."""

    match_type: MatchType | None = None  # strict (equal strings) or regexp
    metric_names: list[str] = field(default_factory=list)  # metric names, any of them
    resource_attributes: list[KeyValueMatch] = field(default_factory=list)  # resource attributes, all of them


@dataclass
class LogMatchProperties:
    """Upstream ``filterconfig.LogMatchProperties``."""

    match_type: MatchType | None = None  # strict (equal strings) or regexp
    resource_attributes: list[KeyValueMatch] = field(default_factory=list)  # resource attributes, all of them
    record_attributes: list[KeyValueMatch] = field(default_factory=list)  # record attributes, all of them
    severity_texts: list[str] = field(default_factory=list)  # severity texts, any of them
    severity_number: SeverityNumberMatch | None = None  # records at or above a severity
    bodies: list[str] = field(default_factory=list)  # string bodies, any of them


def parse_severity_number(value: Any) -> int:
    """``9``, ``"INFO"``, ``"info"``, ``"SEVERITY_NUMBER_INFO"`` -> 9; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24:
        return value
    if isinstance(value, str) and value.upper() in _SEVERITY_NAMES:
        return _SEVERITY_NAMES[value.upper()]
    raise ValueError(f"expected a severity number 0..24 or a name such as 'INFO' or 'WARN2', got {value!r}")


def _span_kind(text: str) -> int | None:
    name = text.upper().removeprefix("SPAN_KIND_")
    return _SPAN_KINDS.get(name)


def _check_patterns(where: str, match_type: str | None, patterns: Iterable[str], errors: list[str]) -> None:
    if match_type != "regexp":
        return
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(f"{where}[{i}]: invalid regexp {pattern!r}: {exc}")


def _check_kvs(where: str, match_type: str | None, kvs: list[KeyValueMatch], errors: list[str]) -> None:
    for i, kv in enumerate(kvs):
        if not kv.key:
            errors.append(f"{where}[{i}].key: must be set")
        if match_type == "regexp" and kv.value is not None:
            if not isinstance(kv.value, str):
                errors.append(f"{where}[{i}].value: with match_type regexp, value must be a string pattern")
            else:
                _check_patterns(f"{where}[{i}].value", "regexp", [kv.value], errors)


def validate_properties(where: str, props: MatchProperties | MetricMatchProperties) -> list[str]:
    """Problems with one include/exclude block, each naming its key path under ``where``."""
    errors: list[str] = []
    if props.match_type is None:
        errors.append(f"{where}.match_type: must be 'strict' or 'regexp' when {where} is set")
    mt = props.match_type
    if isinstance(props, MatchProperties):
        for name in ("services", "span_names", "log_bodies", "log_severity_texts", "metric_names"):
            _check_patterns(f"{where}.{name}", mt, getattr(props, name), errors)
        _check_kvs(f"{where}.attributes", mt, props.attributes, errors)
        _check_kvs(f"{where}.resources", mt, props.resources, errors)
        for i, kind in enumerate(props.span_kinds):
            if _span_kind(kind) is None:
                errors.append(f"{where}.span_kinds[{i}]: unknown span kind {kind!r} (e.g. SPAN_KIND_SERVER)")
        for i, lib in enumerate(props.libraries):
            if not lib.name:
                errors.append(f"{where}.libraries[{i}].name: must be set")
            _check_patterns(f"{where}.libraries[{i}].name", mt, [lib.name], errors)
        if props.log_severity_number is not None:
            try:
                parse_severity_number(props.log_severity_number.min)
            except ValueError as exc:
                errors.append(f"{where}.log_severity_number.min: {exc}")
    else:
        _check_patterns(f"{where}.metric_names", mt, props.metric_names, errors)
        _check_kvs(f"{where}.resource_attributes", mt, props.resource_attributes, errors)
    return errors


def validate_log_properties(where: str, props: LogMatchProperties) -> list[str]:
    errors: list[str] = []
    if props.match_type is None:
        errors.append(f"{where}.match_type: must be 'strict' or 'regexp' when {where} is set")
    mt = props.match_type
    _check_patterns(f"{where}.bodies", mt, props.bodies, errors)
    _check_patterns(f"{where}.severity_texts", mt, props.severity_texts, errors)
    _check_kvs(f"{where}.resource_attributes", mt, props.resource_attributes, errors)
    _check_kvs(f"{where}.record_attributes", mt, props.record_attributes, errors)
    if props.severity_number is not None:
        try:
            parse_severity_number(props.severity_number.min)
        except ValueError as exc:
            errors.append(f"{where}.severity_number.min: {exc}")
    return errors


# --- values -----------------------------------------------------------------------------------------------


def scalar_string(value: AnyValue) -> str | None:
    """pdata's ``AsString`` of a string, bool, int, double or bytes value; None for an empty, array or map value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return go_float_string(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def any_value_string(value: AnyValue) -> str | None:
    """The string form a ``regexp`` matches against (upstream's ``AsString``); None for an empty value."""
    text = scalar_string(value)
    if text is None and value.WhichOneof("value") is not None:
        return str(value).strip()
    return text


def go_float_string(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'f', -1, 64)`` as pdata's ``AsString`` uses: no exponent, no ``.0``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    text = repr(x)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text.removesuffix(".0")


def _strict_equal(value: AnyValue, expected: Any) -> bool:
    kind = value.WhichOneof("value")
    if isinstance(expected, bool):
        return kind == "bool_value" and value.bool_value is expected
    if isinstance(expected, int):
        return kind == "int_value" and value.int_value == expected
    if isinstance(expected, float):
        return kind == "double_value" and value.double_value == expected
    if isinstance(expected, str):
        return kind == "string_value" and value.string_value == expected
    return False


StringMatcher = Callable[[str], bool]


def _names_matcher(match_type: str | None, names: list[str]) -> StringMatcher | None:
    if not names:
        return None
    if match_type == "regexp":
        combined = re.compile("|".join(f"(?:{p})" for p in names))
        return lambda s: combined.search(s) is not None
    wanted = frozenset(names)
    return lambda s: s in wanted


AttrMatcher = Callable[[Iterable[KeyValue]], bool]


def _attrs_matcher(match_type: str | None, kvs: list[KeyValueMatch]) -> AttrMatcher | None:
    if not kvs:
        return None
    checks: list[tuple[str, Callable[[AnyValue], bool]]] = []
    for kv in kvs:
        if kv.value is None:
            checks.append((kv.key, lambda _v: True))
        elif match_type == "regexp":
            pattern = re.compile(str(kv.value))

            def _re_check(v: AnyValue, pattern: re.Pattern[str] = pattern) -> bool:
                s = any_value_string(v)
                return s is not None and pattern.search(s) is not None

            checks.append((kv.key, _re_check))
        else:

            def _eq_check(v: AnyValue, expected: Any = kv.value) -> bool:
                return _strict_equal(v, expected)

            checks.append((kv.key, _eq_check))
    keys = frozenset(k for k, _ in checks)

    def match(attributes: Iterable[KeyValue]) -> bool:
        found = {kv.key: kv.value for kv in attributes if kv.key in keys}
        for key, check in checks:
            value = found.get(key)
            if value is None or not check(value):
                return False
        return True

    return match


def _service_name(resource: Resource) -> str:
    name = ""
    for kv in resource.attributes:
        if kv.key == SERVICE_NAME:
            name = kv.value.string_value
    return name


def _libraries_matcher(
    match_type: str | None, libs: list[LibraryMatch]
) -> Callable[[InstrumentationScope], bool] | None:
    if not libs:
        return None
    entries: list[tuple[StringMatcher, StringMatcher | None]] = []
    for lib in libs:
        name_m = _names_matcher(match_type, [lib.name])
        version_m = _names_matcher(match_type, [lib.version]) if lib.version is not None else None
        assert name_m is not None
        entries.append((name_m, version_m))

    def match(scope: InstrumentationScope) -> bool:
        return any(n(scope.name) and (v is None or v(scope.version)) for n, v in entries)

    return match


def _severity_matcher(sev: SeverityNumberMatch | None) -> Callable[[LogRecord], bool] | None:
    if sev is None:
        return None
    minimum = parse_severity_number(sev.min)
    undefined = sev.match_undefined

    def match(record: LogRecord) -> bool:
        if record.severity_number == 0:
            return undefined
        return int(record.severity_number) >= minimum

    return match


# --- compiled matchers ------------------------------------------------------------------------------------


class _ResourceScoped:
    """Resource- and scope-level checks, evaluated once per resource/scope rather than per item."""

    def __init__(
        self,
        match_type: str | None,
        services: Sequence[str],
        resources: Sequence[KeyValueMatch],
        libraries: Sequence[LibraryMatch],
    ) -> None:
        self._services = _names_matcher(match_type, list(services))
        self._resources = _attrs_matcher(match_type, list(resources))
        self._libraries = _libraries_matcher(match_type, list(libraries))

    def match_resource(self, resource: Resource) -> bool:
        if self._services is not None and not self._services(_service_name(resource)):
            return False
        return self._resources is None or self._resources(resource.attributes)

    def match_scope(self, scope: InstrumentationScope) -> bool:
        return self._libraries is None or self._libraries(scope)


class SpanMatcher(_ResourceScoped):
    def __init__(self, props: MatchProperties) -> None:
        mt = props.match_type
        super().__init__(mt, props.services, props.resources, props.libraries)
        self._names = _names_matcher(mt, props.span_names)
        self._attrs = _attrs_matcher(mt, props.attributes)
        kinds = [_span_kind(k) for k in props.span_kinds]
        self._kinds = frozenset(k for k in kinds if k is not None) or None

    def match_item(self, span: Span) -> bool:
        if self._names is not None and not self._names(span.name):
            return False
        if self._kinds is not None and int(span.kind) not in self._kinds:
            return False
        return self._attrs is None or self._attrs(span.attributes)


class LogMatcher(_ResourceScoped):
    def __init__(
        self,
        match_type: str | None,
        *,
        services: Sequence[str] = (),
        resources: Sequence[KeyValueMatch] = (),
        libraries: Sequence[LibraryMatch] = (),
        attributes: Sequence[KeyValueMatch] = (),
        bodies: Sequence[str] = (),
        severity_texts: Sequence[str] = (),
        severity_number: SeverityNumberMatch | None = None,
    ) -> None:
        super().__init__(match_type, services, resources, libraries)
        self._attrs = _attrs_matcher(match_type, list(attributes))
        self._bodies = _names_matcher(match_type, list(bodies))
        self._texts = _names_matcher(match_type, list(severity_texts))
        self._severity = _severity_matcher(severity_number)

    def match_item(self, record: LogRecord) -> bool:
        if self._bodies is not None:
            body = any_value_string(record.body)
            if body is None or not self._bodies(body):
                return False
        if self._texts is not None and not self._texts(record.severity_text):
            return False
        if self._severity is not None and not self._severity(record):
            return False
        return self._attrs is None or self._attrs(record.attributes)


class MetricMatcher(_ResourceScoped):
    def __init__(
        self,
        match_type: str | None,
        *,
        names: Sequence[str] = (),
        services: Sequence[str] = (),
        resources: Sequence[KeyValueMatch] = (),
        libraries: Sequence[LibraryMatch] = (),
    ) -> None:
        super().__init__(match_type, services, resources, libraries)
        self._names = _names_matcher(match_type, list(names))

    def match_item(self, metric: Metric) -> bool:
        return self._names is None or self._names(metric.name)


Matcher = SpanMatcher | LogMatcher | MetricMatcher


def compile_matcher(signal: Signal, props: MatchProperties | None) -> Matcher | None:
    """The ``signal``'s matcher of a ``MatchProperties`` (which reads only the keys its items have)."""
    if signal is Signal.TRACES:
        return compile_span_matcher(props)
    if signal is Signal.LOGS:
        return compile_log_matcher(props)
    return compile_metric_matcher(props)


def matched_items(signal: Signal, request: Request, include: Matcher | None, exclude: Matcher | None) -> Iterator[Any]:
    """The spans, log records or metrics of ``request`` that ``include`` matches and ``exclude`` does not; each
    resource and scope is checked once, not per item."""
    spec = SIGNALS[signal]
    for entry in getattr(request, spec.resource_field):
        if include is not None and not include.match_resource(entry.resource):
            continue
        exclude_resource = exclude is not None and exclude.match_resource(entry.resource)
        for scope_entry in getattr(entry, spec.scope_field):
            if include is not None and not include.match_scope(scope_entry.scope):
                continue
            exclude_scope = exclude_resource and exclude is not None and exclude.match_scope(scope_entry.scope)
            for item in getattr(scope_entry, spec.item_field):
                if include is not None and not include.match_item(item):
                    continue
                if exclude_scope and exclude is not None and exclude.match_item(item):
                    continue
                yield item


def compile_span_matcher(props: MatchProperties | None) -> SpanMatcher | None:
    return None if props is None else SpanMatcher(props)


def compile_log_matcher(props: MatchProperties | LogMatchProperties | None) -> LogMatcher | None:
    if props is None:
        return None
    if isinstance(props, LogMatchProperties):
        return LogMatcher(
            props.match_type,
            resources=props.resource_attributes,
            attributes=props.record_attributes,
            bodies=props.bodies,
            severity_texts=props.severity_texts,
            severity_number=props.severity_number,
        )
    return LogMatcher(
        props.match_type,
        services=props.services,
        resources=props.resources,
        libraries=props.libraries,
        attributes=props.attributes,
        bodies=props.log_bodies,
        severity_texts=props.log_severity_texts,
        severity_number=props.log_severity_number,
    )


def compile_metric_matcher(props: MatchProperties | MetricMatchProperties | None) -> MetricMatcher | None:
    if props is None:
        return None
    if isinstance(props, MetricMatchProperties):
        return MetricMatcher(props.match_type, names=props.metric_names, resources=props.resource_attributes)
    return MetricMatcher(
        props.match_type,
        names=props.metric_names,
        services=props.services,
        resources=props.resources,
        libraries=props.libraries,
    )

"""The ``filter`` processor: drop spans, metrics and log records by name, attributes and resource.

Two config forms of upstream contrib's ``filterprocessor`` are accepted; one signal may use only one of
them.

* The structured form: ``spans.include/exclude`` (``match_type``, ``services``, ``span_names``,
  ``span_kinds``, ``attributes``, ``resources``, ``libraries``), ``metrics.include/exclude``
  (``match_type``, ``metric_names``, ``resource_attributes``) and ``logs.include/exclude`` (``match_type``,
  ``bodies``, ``severity_texts``, ``severity_number: {min, match_undefined}``, ``record_attributes``,
  ``resource_attributes``). With ``include`` only matching items are kept; items matching ``exclude`` are
  dropped.
* The OTTL form for its common cases: ``traces.span``, ``metrics.metric`` and ``logs.log_record`` are lists
  of conditions; an item is dropped when any is true. A condition is ``<path> == <literal>``, ``<path> !=
  <literal>`` or ``IsMatch(<path>, "<regexp>")``; paths are ``name``, ``attributes["k"]``,
  ``resource.attributes["k"]``, ``instrumentation_scope.name``/``.version`` and per context ``kind``,
  ``status.code`` (spans), ``body``, ``severity_text``, ``severity_number`` (logs), ``unit``,
  ``description``, ``type`` (metrics). Anything else (``and``/``or``, other functions, ``spanevent``,
  ``datapoint``) is a config error naming the condition.

Empty scopes and resources are removed; when nothing is left the request is not passed on (upstream's
``ErrSkipProcessingData``: the sender still gets success). Dropped items are counted as
``otelcol_processor_filter_{spans,datapoints,logs}.filtered`` with attribute ``filter`` = the component id.
``error_mode`` is accepted for compatibility; the supported conditions cannot fail at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from processors._attributes import any_value_to_python
from processors._matching import (
    LogMatchProperties,
    MatchProperties,
    MetricMatchProperties,
    compile_log_matcher,
    compile_metric_matcher,
    compile_span_matcher,
    go_float_string,
    validate_log_properties,
    validate_properties,
)
from processors.pdata import SIGNALS, metric_points, resource_entries
from processors.pipeline import Consumer, CreateSettings, ProcessorFactory, Request, Signal, SyncProcessor

__all__ = ["FilterConfig", "FilterProcessor", "UnsupportedCondition", "compile_condition", "factories"]

TYPE = "filter"


@dataclass
class SpansFilter:
    include: MatchProperties | None = None  # keep only the spans that match
    exclude: MatchProperties | None = None  # drop the spans that match


@dataclass
class MetricsFilter:
    include: MetricMatchProperties | None = None  # keep only the metrics that match
    exclude: MetricMatchProperties | None = None  # drop the metrics that match
    metric: list[str] = field(default_factory=list)  # OTTL conditions: a metric is dropped when any is true
    datapoint: list[str] = field(default_factory=list)  # OTTL data point conditions: not supported (config error)


@dataclass
class LogsFilter:
    include: LogMatchProperties | None = None  # keep only the log records that match
    exclude: LogMatchProperties | None = None  # drop the log records that match
    log_record: list[str] = field(default_factory=list)  # OTTL conditions: a record is dropped when any is true


@dataclass
class TracesFilter:
    span: list[str] = field(default_factory=list)  # OTTL conditions: a span is dropped when any is true
    spanevent: list[str] = field(default_factory=list)  # OTTL span event conditions: not supported (config error)


@dataclass
class FilterConfig:
    # Accepted for compatibility: the supported conditions cannot fail at run time.
    error_mode: Literal["propagate", "ignore", "silent"] = "propagate"
    spans: SpansFilter = field(default_factory=SpansFilter)
    metrics: MetricsFilter = field(default_factory=MetricsFilter)
    logs: LogsFilter = field(default_factory=LogsFilter)
    traces: TracesFilter = field(default_factory=TracesFilter)

    def validate(self) -> list[str]:
        errors: list[str] = []
        for name in ("include", "exclude"):
            span_props = getattr(self.spans, name)
            if span_props is not None:
                errors.extend(validate_properties(f"spans.{name}", span_props))
            metric_props = getattr(self.metrics, name)
            if metric_props is not None:
                errors.extend(validate_properties(f"metrics.{name}", metric_props))
            log_props = getattr(self.logs, name)
            if log_props is not None:
                errors.extend(validate_log_properties(f"logs.{name}", log_props))
        for where, conditions, context in (
            ("traces.span", self.traces.span, "span"),
            ("metrics.metric", self.metrics.metric, "metric"),
            ("logs.log_record", self.logs.log_record, "log"),
        ):
            for i, text in enumerate(conditions):
                try:
                    compile_condition(text, context)
                except UnsupportedCondition as exc:
                    errors.append(f"{where}[{i}]: {exc}")
        for where, unsupported in (
            ("traces.spanevent", self.traces.spanevent),
            ("metrics.datapoint", self.metrics.datapoint),
        ):
            if unsupported:
                errors.append(f"{where}: not supported (supported: traces.span, metrics.metric, logs.log_record)")
        if (self.spans.include or self.spans.exclude) and self.traces.span:
            errors.append("traces.span: cannot be combined with spans.include/exclude; use one form")
        if (self.metrics.include or self.metrics.exclude) and self.metrics.metric:
            errors.append("metrics.metric: cannot be combined with metrics.include/exclude; use one form")
        if (self.logs.include or self.logs.exclude) and self.logs.log_record:
            errors.append("logs.log_record: cannot be combined with logs.include/exclude; use one form")
        return errors


# --- the OTTL subset --------------------------------------------------------------------------------------


class UnsupportedCondition(ValueError):
    """A condition outside the supported OTTL subset (the message says what is supported)."""


_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PATH = rf"(?P<path>[a-z_]+(?:\.[a-z_]+)*(?:\[\s*{_QUOTED}\s*\])?)"
_LITERAL = r"(?P<lit>" + _QUOTED + r"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|nil|[A-Z][A-Z0-9_]*)"
_COMPARE = re.compile(rf"^\s*{_PATH}\s*(?P<op>==|!=)\s*{_LITERAL}\s*$")
_IS_MATCH = re.compile(rf"^\s*IsMatch\(\s*{_PATH}\s*,\s*(?P<pattern>{_QUOTED})\s*\)\s*$")
_MAP_PATH = re.compile(rf"^(?P<base>attributes|resource\.attributes)\[\s*(?P<key>{_QUOTED})\s*\]$")

_ENUMS: dict[str, int] = {
    **{
        f"SPAN_KIND_{k}": v
        for v, k in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))
    },
    **{f"STATUS_CODE_{k}": v for v, k in enumerate(("UNSET", "OK", "ERROR"))},
    **{
        f"METRIC_DATA_TYPE_{k}": v
        for v, k in enumerate(("NONE", "GAUGE", "SUM", "HISTOGRAM", "EXPONENTIAL_HISTOGRAM", "SUMMARY"))
    },
    "SEVERITY_NUMBER_UNSPECIFIED": 0,
    **{
        f"SEVERITY_NUMBER_{name}{'' if j == 0 else j + 1}": i * 4 + j + 1
        for i, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
        for j in range(4)
    },
}

_METRIC_TYPES = {"gauge": 1, "sum": 2, "histogram": 3, "exponential_histogram": 4, "summary": 5}

Getter = Callable[[Resource, InstrumentationScope, Any], object]
Condition = Callable[[Resource, InstrumentationScope, Any], bool]

_SUPPORTED = (
    'supported: <path> == <literal>, <path> != <literal>, IsMatch(<path>, "regexp"); paths: name, '
    'attributes["k"], resource.attributes["k"], instrumentation_scope.name/version'
)


def _unquote(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedCondition(f"invalid string literal {text}: {exc.msg}") from None
    assert isinstance(value, str)
    return value


def _attr(attributes: Any, key: str) -> object:
    found: AnyValue | None = None
    for kv in attributes:
        if kv.key == key:
            found = kv.value
    return None if found is None else any_value_to_python(found)


def _getter(path: str, context: str) -> Getter:
    m = _MAP_PATH.match(path)
    if m is not None:
        key = _unquote(m.group("key"))
        if m.group("base") == "attributes":
            if context == "metric":
                raise UnsupportedCondition("attributes[...] is not available in the metric context")
            return lambda r, s, item: _attr(item.attributes, key)
        return lambda r, s, item: _attr(r.attributes, key)
    common: dict[str, Getter] = {
        "instrumentation_scope.name": lambda r, s, item: s.name,
        "instrumentation_scope.version": lambda r, s, item: s.version,
    }
    per_context: dict[str, dict[str, Getter]] = {
        "span": {
            "name": lambda r, s, item: item.name,
            "kind": lambda r, s, item: int(item.kind),
            "status.code": lambda r, s, item: int(item.status.code),
        },
        "log": {
            "body": lambda r, s, item: any_value_to_python(item.body),
            "severity_text": lambda r, s, item: item.severity_text,
            "severity_number": lambda r, s, item: int(item.severity_number),
        },
        "metric": {
            "name": lambda r, s, item: item.name,
            "unit": lambda r, s, item: item.unit,
            "description": lambda r, s, item: item.description,
            "type": lambda r, s, item: _METRIC_TYPES.get(item.WhichOneof("data") or "", 0),
        },
    }
    getter = per_context[context].get(path) or common.get(path)
    if getter is None:
        raise UnsupportedCondition(f"path {path!r} is not supported in the {context} context; {_SUPPORTED}")
    return getter


def _literal(text: str) -> object:
    if text.startswith('"'):
        return _unquote(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "nil":
        return None
    if text[0].isupper():
        if text not in _ENUMS:
            raise UnsupportedCondition(f"unknown enum {text}")
        return _ENUMS[text]
    return float(text) if any(c in text for c in ".eE") else int(text)


def _equal(a: object, b: object) -> bool:
    # OTTL compares numbers across int/float but never a bool with a number, nor a string with a number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return go_float_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return json.dumps(value, separators=(",", ":"), default=str)


def compile_condition(text: str, context: Literal["span", "metric", "log"] | str) -> Condition:
    """A supported OTTL condition -> predicate over (resource, scope, item); else UnsupportedCondition."""
    m = _IS_MATCH.match(text)
    if m is not None:
        get = _getter(m.group("path"), context)
        source = _unquote(m.group("pattern"))
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise UnsupportedCondition(f"invalid regexp {source!r}: {exc}") from None

        def is_match(r: Resource, s: InstrumentationScope, item: Any) -> bool:
            value = _as_text(get(r, s, item))
            return value is not None and pattern.search(value) is not None

        return is_match
    m = _COMPARE.match(text)
    if m is not None:
        get = _getter(m.group("path"), context)
        expected = _literal(m.group("lit"))
        if m.group("op") == "==":
            return lambda r, s, item: _equal(get(r, s, item), expected)
        return lambda r, s, item: not _equal(get(r, s, item), expected)
    raise UnsupportedCondition(f"condition {text!r} is not supported; {_SUPPORTED}")


# --- the processor ----------------------------------------------------------------------------------------

_Keep = Callable[[Resource, InstrumentationScope, Any], bool]


def _legacy_keep(include: Any, exclude: Any) -> _Keep | None:
    if include is None and exclude is None:
        return None

    def keep(r: Resource, s: InstrumentationScope, item: Any) -> bool:
        if include is not None and not (
            include.match_resource(r) and include.match_scope(s) and include.match_item(item)
        ):
            return False
        return exclude is None or not (
            exclude.match_resource(r) and exclude.match_scope(s) and exclude.match_item(item)
        )

    return keep


def _conditions_keep(conditions: list[Condition]) -> _Keep | None:
    if not conditions:
        return None
    return lambda r, s, item: not any(c(r, s, item) for c in conditions)


class FilterProcessor(SyncProcessor):
    def __init__(self, settings: CreateSettings, config: FilterConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self._keep: dict[Signal, _Keep | None] = {
            Signal.TRACES: _legacy_keep(
                compile_span_matcher(config.spans.include), compile_span_matcher(config.spans.exclude)
            )
            or _conditions_keep([compile_condition(c, "span") for c in config.traces.span]),
            Signal.METRICS: _legacy_keep(
                compile_metric_matcher(config.metrics.include), compile_metric_matcher(config.metrics.exclude)
            )
            or _conditions_keep([compile_condition(c, "metric") for c in config.metrics.metric]),
            Signal.LOGS: _legacy_keep(
                compile_log_matcher(config.logs.include), compile_log_matcher(config.logs.exclude)
            )
            or _conditions_keep([compile_condition(c, "log") for c in config.logs.log_record]),
        }
        attrs = {"filter": str(settings.id)}
        meter = settings.meter
        names = {Signal.TRACES: "spans", Signal.METRICS: "datapoints", Signal.LOGS: "logs"}
        self._counters = {
            s: meter.create_counter(
                f"otelcol_processor_filter_{n}.filtered",
                unit="1",
                description=f"Number of {n} dropped by the filter processor",
            )
            for s, n in names.items()
        }
        self._attrs = attrs

    def process(self, signal: Signal, request: Request) -> bool:
        keep = self._keep[signal]
        if keep is not None:
            dropped = self._filter(signal, request, keep)
            if dropped:
                self._counters[signal].add(dropped, self._attrs)
                if not resource_entries(signal, request):
                    return False
        return True

    @staticmethod
    def _filter(signal: Signal, request: Request, keep: _Keep) -> int:
        """Drop items (and scopes/resources left empty) in place; return how many items were dropped."""
        scope_field, item_field = SIGNALS[signal].scope_field, SIGNALS[signal].item_field
        weigh = metric_points if signal is Signal.METRICS else None
        dropped = 0
        resources = resource_entries(signal, request)
        for ri in range(len(resources) - 1, -1, -1):
            entry = resources[ri]
            resource = entry.resource
            scopes = getattr(entry, scope_field)
            for si in range(len(scopes) - 1, -1, -1):
                scope_entry = scopes[si]
                scope = scope_entry.scope
                items = getattr(scope_entry, item_field)
                drop = [i for i, item in enumerate(items) if not keep(resource, scope, item)]
                dropped += len(drop) if weigh is None else sum(weigh(items[i]) for i in drop)
                if len(drop) == len(items):
                    del scopes[si]
                    continue
                for i in reversed(drop):
                    del items[i]
            if not scopes:
                del resources[ri]
        return dropped


factories = (ProcessorFactory(type=TYPE, config_type=FilterConfig, create=FilterProcessor),)

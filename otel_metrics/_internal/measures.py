"""Business measures: small typed helpers over OTel metrics, with span events for the non-numeric details.

Every name, unit and attribute is documented in docs/metrics.md. Numbers go to metrics (aggregatable); free
text (feedback, reasons, messages) goes to a span event on the current span only (never a metric attribute).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace as trace_api

from otel_metrics._internal.decorator import FAILURE, error_type
from otel_metrics._internal.fast_processors import SUCCESS
from otel_metrics._internal.safety import internal_error, report_once
from otel_metrics._internal.state import DURATION_BUCKETS, STATE, metric_dimensions_from_context

# name -> (instrument kind, unit, description)
SPECS: dict[str, tuple[str, str, str]] = {
    "app.satisfaction.score": ("histogram", "1", "User satisfaction scores, normalised to 0..1."),
    "app.feature.usage": ("counter", "{use}", "Feature uses by feature, action and outcome."),
    "app.feature.duration": ("histogram", "s", "Duration of feature uses."),
    "app.model.accuracy": ("gauge", "1", "Latest measured accuracy of a model (0..1)."),
    "app.model.confidence": ("gauge", "1", "Latest measured mean confidence of a model (0..1)."),
    "app.model.evaluation.samples": ("counter", "{sample}", "Samples evaluated for model quality."),
    "app.optimization.value": ("gauge", "1", "Before/after value of an optimization (unit in attribute)."),
    "app.optimization.improvement": ("gauge", "1", "Relative improvement (before-after)/before."),
    "app.resource.utilization": ("gauge", "1", "Utilization of a resource (0..1)."),
    "app.errors": ("counter", "{error}", "Errors reported by the app, by type, severity and recovery."),
    "app.agent.selections": ("counter", "{selection}", "Agent selections by agent."),
    "app.agent.complexity": ("histogram", "1", "Complexity score of tasks at agent selection."),
    "app.tool.calls": ("counter", "{call}", "Tool calls by tool and outcome."),
    "app.tool.duration": ("histogram", "s", "Duration of tool calls."),
}
_SEVERITIES = ("debug", "info", "warning", "error", "critical")


def _instrument(name: str) -> Any:
    extra = STATE.instruments().extra
    inst = extra.get(name)
    if inst is None:
        kind, unit, description = SPECS[name]
        meter = STATE.meter()
        if kind == "histogram":
            inst = meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS if unit == "s" else None,
            )
        elif kind == "counter":
            inst = meter.create_counter(name, unit=unit, description=description)
        else:
            inst = meter.create_gauge(name, unit=unit, description=description)
        extra[name] = inst
    return inst


def _number(value: Any, field: str, where: str, lo: float | None = None, hi: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN != NaN
        report_once(
            f"{where}:{field}:type",
            "otel_metrics: %s %s must be a number, got %r; not recorded",
            where,
            field,
            value,
        )
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        report_once(
            f"{where}:{field}:range",
            "otel_metrics: %s %s=%r is outside [%s, %s]; not recorded",
            where,
            field,
            value,
            lo,
            hi,
        )
        return None
    return float(value)


def _text(value: Any, field: str, where: str) -> str | None:
    if not isinstance(value, str) or not value:
        report_once(
            f"{where}:{field}",
            "otel_metrics: %s %s must be a non-empty str, got %r; not recorded",
            where,
            field,
            value,
        )
        return None
    return value


def _event(name: str, attributes: dict[str, Any]) -> None:
    span = trace_api.get_current_span()
    if span.is_recording():
        span.add_event(name, {k: v for k, v in attributes.items() if v is not None})


def _attrs(**attrs: Any) -> dict[str, Any]:
    return {**attrs, **metric_dimensions_from_context()}


def record_satisfaction(score: float, *, feedback: str | None = None, scale: float = 1.0) -> None:
    """A satisfaction score (``score / scale`` must land in 0..1, e.g. ``score=4, scale=5``); feedback text
    goes to a span event ``app.satisfaction``."""
    try:
        sc = _number(scale, "scale", "record_satisfaction", lo=1e-12)
        value = _number(score, "score", "record_satisfaction", lo=0.0, hi=sc) if sc else None
        if value is None or sc is None:
            return
        _instrument("app.satisfaction.score").record(value / sc, _attrs())
        _event("app.satisfaction", {"app.satisfaction.score": value / sc, "app.satisfaction.feedback": feedback})
    except Exception:
        internal_error("record_satisfaction")


def record_feature_usage(feature: str, action: str, *, duration_s: float, success: bool) -> None:
    """One use of a product feature: counts ``app.feature.usage`` and records ``app.feature.duration``."""
    try:
        f, a = (
            _text(feature, "feature", "record_feature_usage"),
            _text(action, "action", "record_feature_usage"),
        )
        d = _number(duration_s, "duration_s", "record_feature_usage", lo=0.0)
        if f is None or a is None or d is None:
            return
        attrs = _attrs(**{"feature.name": f, "feature.action": a, "operation.outcome": SUCCESS if success else FAILURE})
        _instrument("app.feature.usage").add(1, attrs)
        _instrument("app.feature.duration").record(d, attrs)
    except Exception:
        internal_error("record_feature_usage")


def record_model_quality(model: str, *, accuracy: float, confidence: float, sample_size: int) -> None:
    """An evaluation of a model: accuracy and confidence (0..1) as gauges, the sample size counted."""
    try:
        m = _text(model, "model", "record_model_quality")
        acc = _number(accuracy, "accuracy", "record_model_quality", 0.0, 1.0)
        conf = _number(confidence, "confidence", "record_model_quality", 0.0, 1.0)
        n = _number(sample_size, "sample_size", "record_model_quality", lo=0.0)
        if m is None or acc is None or conf is None or n is None:
            return
        attrs = _attrs(**{"gen_ai.request.model": m})
        _instrument("app.model.accuracy").set(acc, attrs)
        _instrument("app.model.confidence").set(conf, attrs)
        _instrument("app.model.evaluation.samples").add(int(n), attrs)
    except Exception:
        internal_error("record_model_quality")


def record_optimization_impact(name: str, *, before: float, after: float, unit: str) -> float | None:
    """Before/after of an optimization; returns the relative improvement (before-after)/before (lower is
    better, as for latency or cost), or None when before is 0."""
    try:
        n, u = (
            _text(name, "name", "record_optimization_impact"),
            _text(unit, "unit", "record_optimization_impact"),
        )
        b = _number(before, "before", "record_optimization_impact")
        a = _number(after, "after", "record_optimization_impact")
        if n is None or u is None or b is None or a is None:
            return None
        base = {"optimization.name": n, "optimization.unit": u}
        gauge = _instrument("app.optimization.value")
        gauge.set(b, _attrs(**base, **{"optimization.phase": "before"}))
        gauge.set(a, _attrs(**base, **{"optimization.phase": "after"}))
        improvement = (b - a) / b if b else None
        if improvement is not None:
            _instrument("app.optimization.improvement").set(improvement, _attrs(**base))
        return improvement
    except Exception:
        internal_error("record_optimization_impact")
        return None


def record_resource_utilization(resource: str, utilization_ratio: float) -> None:
    """Utilization (0..1) of a named resource (a pool, a quota, a GPU): gauge ``app.resource.utilization``."""
    try:
        r = _text(resource, "resource", "record_resource_utilization")
        u = _number(utilization_ratio, "utilization_ratio", "record_resource_utilization", 0.0, 1.0)
        if r is None or u is None:
            return
        _instrument("app.resource.utilization").set(u, _attrs(**{"resource.name": r}))
    except Exception:
        internal_error("record_resource_utilization")


def record_error(error: BaseException | str, *, severity: str = "error", recovered: bool = False) -> None:
    """An error the app handled (or not): counted by type, severity and recovery; details in a span event."""
    try:
        sev = severity.lower() if isinstance(severity, str) else ""
        if sev not in _SEVERITIES:
            report_once(
                f"record_error:severity:{severity!r}",
                "otel_metrics: record_error severity %r is not one of %s; using 'error'",
                severity,
                ", ".join(_SEVERITIES),
            )
            sev = "error"
        if isinstance(error, BaseException):
            etype, message = error_type(error), str(error)
        else:
            etype, message = (error if isinstance(error, str) and error else "unknown"), None
        attrs = _attrs(**{"error.type": etype, "error.severity": sev, "error.recovered": bool(recovered)})
        _instrument("app.errors").add(1, attrs)
        _event(
            "app.error",
            {
                "error.type": etype,
                "error.severity": sev,
                "error.recovered": bool(recovered),
                "exception.message": message,
            },
        )
    except Exception:
        internal_error("record_error")


def record_agent_selection(agent: str, *, complexity_score: float, reason: str | None = None) -> None:
    """A router picked ``agent``: counted, complexity recorded; the reason goes to a span event."""
    try:
        a = _text(agent, "agent", "record_agent_selection")
        c = _number(complexity_score, "complexity_score", "record_agent_selection", lo=0.0)
        if a is None or c is None:
            return
        attrs = _attrs(**{"gen_ai.agent.name": a})
        _instrument("app.agent.selections").add(1, attrs)
        _instrument("app.agent.complexity").record(c, attrs)
        _event(
            "app.agent.selection",
            {"gen_ai.agent.name": a, "app.agent.complexity": c, "app.agent.selection.reason": reason},
        )
    except Exception:
        internal_error("record_agent_selection")


def record_tool_call(tool: str, *, duration_s: float, success: bool) -> None:
    """One tool call by an agent: counted by tool and outcome, duration recorded."""
    try:
        t = _text(tool, "tool", "record_tool_call")
        d = _number(duration_s, "duration_s", "record_tool_call", lo=0.0)
        if t is None or d is None:
            return
        attrs = _attrs(**{"gen_ai.tool.name": t, "operation.outcome": SUCCESS if success else FAILURE})
        _instrument("app.tool.calls").add(1, attrs)
        _instrument("app.tool.duration").record(d, attrs)
    except Exception:
        internal_error("record_tool_call")

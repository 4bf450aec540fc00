"""otel_metrics: correlation ids, business metadata and cost on OpenTelemetry spans and metrics.

One call sets it up (``configure()``); ``@track_performance`` traces and measures functions;
``correlation_scope``
and ``business_context`` put ids and business attributes on every span inside; ``record_llm_usage`` and
``record_cost`` price the work. Everything is plain OpenTelemetry underneath. Integrations live in
``otel_metrics.fastapi``, ``otel_metrics.logging``, ``otel_metrics.distro`` and ``otel_metrics.testing``.
"""

from __future__ import annotations

from otel_metrics._internal.config import Telemetry, configure
from otel_metrics._internal.cost import record_cost, record_llm_usage
from otel_metrics._internal.decorator import track_performance
from otel_metrics._internal.measures import (
    record_agent_selection,
    record_error,
    record_feature_usage,
    record_model_quality,
    record_optimization_impact,
    record_resource_utilization,
    record_satisfaction,
    record_tool_call,
)
from otel_metrics._internal.scopes import business_context, correlation_scope, get_correlation_id

__all__ = [
    "Telemetry",
    "business_context",
    "configure",
    "correlation_scope",
    "get_correlation_id",
    "record_agent_selection",
    "record_cost",
    "record_error",
    "record_feature_usage",
    "record_llm_usage",
    "record_model_quality",
    "record_optimization_impact",
    "record_resource_utilization",
    "record_satisfaction",
    "record_tool_call",
    "track_performance",
]

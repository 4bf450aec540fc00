"""``spanmetrics`` connector: calls and duration metrics from spans (traces pipeline in, metrics pipeline
out)."""

from __future__ import annotations

from collector.component import ConnectorFactory, Signal

from .config import SpanMetricsConfig
from .connector import SpanMetricsConnector, create_connector

__all__ = ["SpanMetricsConfig", "SpanMetricsConnector", "factories"]

factories = (
    ConnectorFactory(
        type="spanmetrics",
        config_type=SpanMetricsConfig,
        create=create_connector,
        routes=frozenset({(Signal.TRACES, Signal.METRICS)}),
    ),
)

"""``prometheus`` exporter: a scrape endpoint following the OpenTelemetry→Prometheus compatibility spec."""

from __future__ import annotations

from collector.component import ExporterFactory, Signal

from .config import PrometheusExporterConfig
from .exporter import PrometheusExporter, create_exporter, exposition

__all__ = ["PrometheusExporter", "PrometheusExporterConfig", "exposition", "factories"]

factories = (
    ExporterFactory(
        type="prometheus",
        config_type=PrometheusExporterConfig,
        create=create_exporter,
        signals=frozenset({Signal.METRICS}),
    ),
)

"""``prometheus`` exporter: a scrape endpoint following the OpenTelemetry→Prometheus compatibility spec."""

from __future__ import annotations

from collector.component import ExporterFactory, Signal

from .config import PrometheusExporterConfig
from .exporter import PrometheusExporter, create_exporter

__all__ = ["PrometheusExporter", "PrometheusExporterConfig", "factories"]

factories = (
    ExporterFactory(
        type="prometheus",
        config_type=PrometheusExporterConfig,
        create=create_exporter,
        signals=frozenset({Signal.METRICS}),
    ),
)

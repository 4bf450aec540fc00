"""The ``postgres`` exporter: OTLP traces, metrics and logs into partitioned tables with rollups.

Schema contract: docs/schema.md. Database location: ``database.dsn_from_config`` / ``connect_from_config``.
"""

from __future__ import annotations

from collector.component import ExporterFactory

from .config import PostgresExporterConfig
from .exporter import PostgresExporter, create_exporter

__all__ = ["PostgresExporter", "PostgresExporterConfig", "factories"]

TYPE = "postgres"

factories = (ExporterFactory(type=TYPE, config_type=PostgresExporterConfig, create=create_exporter),)

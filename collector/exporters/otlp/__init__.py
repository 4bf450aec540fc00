"""``otlp_grpc`` exporter (alias ``otlp``, its name before Collector v0.144): OTLP over gRPC to Tempo, Jaeger, a
vendor or another collector."""

from __future__ import annotations

from collector.component import ExporterFactory, with_alias

from .config import DEFAULT_COMPRESSION, ClientTLSConfig, Compression, OTLPExporterConfig
from .exporter import OTLPExporter, log_partial_success, parse_endpoint
from .status import RETRYABLE_CODES, classify

__all__ = [
    "DEFAULT_COMPRESSION",
    "RETRYABLE_CODES",
    "ClientTLSConfig",
    "Compression",
    "OTLPExporter",
    "OTLPExporterConfig",
    "classify",
    "factories",
    "log_partial_success",
    "parse_endpoint",
]


factories = with_alias(ExporterFactory(type="otlp_grpc", config_type=OTLPExporterConfig, create=OTLPExporter), "otlp")

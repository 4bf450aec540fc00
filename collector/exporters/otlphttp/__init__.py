"""``otlp_http`` exporter (alias ``otlphttp``): OTLP over HTTP (protobuf or JSON) to Tempo, Jaeger, vendors."""

from __future__ import annotations

from collector.component import ExporterFactory, with_alias

from .config import DEFAULT_HTTP_TIMEOUT, Encoding, HTTPCompression, OTLPHTTPExporterConfig
from .exporter import OTLPHTTPExporter, parse_retry_after

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "Encoding",
    "HTTPCompression",
    "OTLPHTTPExporter",
    "OTLPHTTPExporterConfig",
    "factories",
    "parse_retry_after",
]


factories = with_alias(
    ExporterFactory(type="otlp_http", config_type=OTLPHTTPExporterConfig, create=OTLPHTTPExporter), "otlphttp"
)

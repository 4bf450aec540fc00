"""Config of the ``otlphttp`` / ``otlp_http`` exporter (upstream exporter/otlphttpexporter + confighttp keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.confmap.bounds import at_least
from collector.exporters.exporterhelper import QueueConfig, RetryConfig
from collector.exporters.otlp import ClientTLSConfig
from processors.pipeline import Duration

__all__ = ["DEFAULT_HTTP_TIMEOUT", "Encoding", "HTTPCompression", "OTLPHTTPExporterConfig"]

Encoding = Literal["proto", "json"]
HTTPCompression = Literal["gzip", "none", ""]
# confighttp's client default.
DEFAULT_HTTP_TIMEOUT = Duration(30.0)


@dataclass
class OTLPHTTPExporterConfig:
    # Base URL; /v1/traces, /v1/metrics, /v1/logs are appended unless the per-signal endpoint is set.
    endpoint: str = ""
    traces_endpoint: str = ""
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    tls: ClientTLSConfig = field(default_factory=ClientTLSConfig)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (e.g. an API key)
    compression: HTTPCompression = "gzip"
    encoding: Encoding = "proto"
    timeout: Duration = field(default=DEFAULT_HTTP_TIMEOUT, metadata=at_least(0))
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)
    sending_queue: QueueConfig = field(default_factory=QueueConfig)

    def validate(self) -> list[str]:
        errors = []
        if not (self.endpoint or self.traces_endpoint or self.metrics_endpoint or self.logs_endpoint):
            errors.append("endpoint: required (base URL such as http://tempo:4318) unless *_endpoint keys are set")
        for key in ("endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint"):
            value = getattr(self, key)
            if value and not value.startswith(("http://", "https://")):
                errors.append(f"{key}: expected an http:// or https:// URL, got {value!r}")
        errors.extend(self.tls.validate("tls"))
        errors.extend(self.sending_queue.validate())
        return errors

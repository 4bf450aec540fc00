"""Config of the ``prometheus`` exporter; keys and defaults as upstream contrib's prometheusexporter."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.confighttp import split_endpoint
from collector.confmap.bounds import at_least
from processors.pipeline import Duration

# Upstream has no default endpoint (it is required there). We default to the documented exporter port 8889 on
# localhost, following the Collector's policy (since v0.104) that servers bind localhost unless told
# otherwise;
# set "0.0.0.0:8889" to be scraped from other hosts.
DEFAULT_ENDPOINT = "localhost:8889"
DEFAULT_METRIC_EXPIRATION = Duration(300.0)
# Not an upstream key (upstream keeps every series until it expires): a bound on what clients can make us hold
# and render on every scrape. Well above what the spanmetrics defaults can produce per resource (2 x 2,001).
DEFAULT_MAX_SERIES = 50_000
DEFAULT_SEND_TIMESTAMPS = False
DEFAULT_ENABLE_OPEN_METRICS = False
DEFAULT_ADD_METRIC_SUFFIXES = True
DEFAULT_RESOURCE_TO_TELEMETRY = False


@dataclass
class ResourceToTelemetryConversion:
    enabled: bool = DEFAULT_RESOURCE_TO_TELEMETRY


@dataclass
class TLSServerConfig:
    """configtls.ServerConfig's common keys: a certificate/key pair, optional client CA for mutual TLS."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    min_version: str = "1.2"

    def validate(self) -> list[str]:
        errors = []
        if bool(self.cert_file) != bool(self.key_file):
            errors.append("tls: cert_file and key_file must be set together")
        if self.min_version not in ("1.0", "1.1", "1.2", "1.3"):
            errors.append(f"tls.min_version: {self.min_version!r} is not one of 1.0, 1.1, 1.2, 1.3")
        return errors


@dataclass
class PrometheusExporterConfig:
    endpoint: str = DEFAULT_ENDPOINT
    namespace: str = ""
    const_labels: dict[str, str] = field(default_factory=dict)
    send_timestamps: bool = DEFAULT_SEND_TIMESTAMPS
    metric_expiration: Duration = field(default=DEFAULT_METRIC_EXPIRATION, metadata=at_least(0))
    max_series: int = field(default=DEFAULT_MAX_SERIES, metadata=at_least(0))
    resource_to_telemetry_conversion: ResourceToTelemetryConversion = field(
        default_factory=ResourceToTelemetryConversion
    )
    enable_open_metrics: bool = DEFAULT_ENABLE_OPEN_METRICS
    add_metric_suffixes: bool = DEFAULT_ADD_METRIC_SUFFIXES
    tls: TLSServerConfig | None = None

    def validate(self) -> list[str]:
        errors = []
        try:
            split_endpoint(self.endpoint)
        except ValueError as exc:
            errors.append(f"endpoint: {exc}")
        if self.tls is not None:
            errors.extend(self.tls.validate())
        return errors

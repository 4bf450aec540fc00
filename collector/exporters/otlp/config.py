"""Config of the ``otlp`` / ``otlp_grpc`` exporter (upstream exporter/otlpexporter + configgrpc client keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.confmap.bounds import at_least
from collector.exporters.exporterhelper import DEFAULT_TIMEOUT, QueueConfig, RetryConfig
from processors.pipeline import Duration

__all__ = ["DEFAULT_COMPRESSION", "ClientTLSConfig", "Compression", "OTLPExporterConfig"]

Compression = Literal["gzip", "deflate", "none", ""]
# Upstream's gRPC client compresses with gzip unless told otherwise.
DEFAULT_COMPRESSION: Compression = "gzip"


@dataclass
class ClientTLSConfig:
    """configtls client keys. TLS is on unless ``insecure: true`` (or the endpoint says ``http://``)."""

    insecure: bool = False  # plaintext, no TLS
    ca_file: str = ""  # PEM CA bundle to verify the server with (default: the system's roots)
    cert_file: str = ""  # PEM client certificate, for mutual TLS (with key_file)
    key_file: str = ""  # PEM private key of cert_file
    # grpcio cannot skip verification; accepted for compatibility and reported by validate() for gRPC.
    insecure_skip_verify: bool = False
    server_name_override: str = ""  # name to verify the server's certificate against instead of the endpoint's host

    def validate(self, path: str) -> list[str]:
        errors = []
        if bool(self.cert_file) != bool(self.key_file):
            errors.append(f"{path}: cert_file and key_file must be set together")
        return errors

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        def load(name: str) -> bytes | None:
            if not name:
                return None
            with open(name, "rb") as f:
                return f.read()

        return load(self.ca_file), load(self.key_file), load(self.cert_file)


@dataclass
class OTLPExporterConfig:
    # host:port of the gRPC server (a scheme is accepted: http:// means plaintext, https:// TLS).
    endpoint: str = ""
    tls: ClientTLSConfig = field(default_factory=ClientTLSConfig)
    headers: dict[str, str] = field(default_factory=dict)
    compression: Compression = DEFAULT_COMPRESSION
    timeout: Duration = field(default=DEFAULT_TIMEOUT, metadata=at_least(0))
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)
    sending_queue: QueueConfig = field(default_factory=QueueConfig)

    def validate(self) -> list[str]:
        errors = []
        if not self.endpoint:
            errors.append("endpoint: required (host:port of the OTLP gRPC server)")
        errors.extend(self.tls.validate("tls"))
        if self.tls.insecure_skip_verify:
            errors.append("tls::insecure_skip_verify: not supported by the gRPC client; set tls::ca_file instead")
        errors.extend(self.sending_queue.validate())
        return errors

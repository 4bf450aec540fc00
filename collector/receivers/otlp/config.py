"""Config of the ``otlp`` receiver: the upstream otlpreceiver's keys and defaults (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from collector.confighttp import split_endpoint
from processors.pdata import SIGNALS, Signal

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_LOGS_URL_PATH",
    "DEFAULT_MAX_RECV_MSG_SIZE_MIB",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_METRICS_URL_PATH",
    "DEFAULT_TRACES_URL_PATH",
    "AuthConfig",
    "CORSConfig",
    "GRPCConfig",
    "HTTPConfig",
    "OTLPReceiverConfig",
    "ProtocolsConfig",
    "TLSConfig",
]

# Upstream's defaults since v0.104 bind localhost only; "0.0.0.0:4317" listens on every interface.
DEFAULT_GRPC_ENDPOINT = "localhost:4317"
DEFAULT_HTTP_ENDPOINT = "localhost:4318"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 4  # grpc-go's default receive limit, which upstream keeps
DEFAULT_MAX_REQUEST_BODY_SIZE = 20 * 1024 * 1024  # confighttp's default; applies after decompression too
DEFAULT_TRACES_URL_PATH = SIGNALS[Signal.TRACES].url_path
DEFAULT_METRICS_URL_PATH = SIGNALS[Signal.METRICS].url_path
DEFAULT_LOGS_URL_PATH = SIGNALS[Signal.LOGS].url_path


@dataclass
class TLSConfig:
    cert_file: str = ""
    key_file: str = ""

    def validate(self, path: str) -> list[str]:
        if bool(self.cert_file) != bool(self.key_file):
            return [f"{path}: cert_file and key_file must be set together"]
        return []


@dataclass
class AuthConfig:
    # Id of an extension in service.extensions that authenticates requests, e.g. "bearertokenauth".
    authenticator: str = ""


@dataclass
class CORSConfig:
    allowed_origins: list[str] = field(default_factory=list)
    allowed_headers: list[str] = field(default_factory=list)
    max_age: int = 0


@dataclass
class GRPCConfig:
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    max_recv_msg_size_mib: int = DEFAULT_MAX_RECV_MSG_SIZE_MIB
    max_concurrent_streams: int = 0  # 0: grpc's own default
    tls: TLSConfig | None = None
    auth: AuthConfig | None = None


@dataclass
class HTTPConfig:
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    traces_url_path: str = DEFAULT_TRACES_URL_PATH
    metrics_url_path: str = DEFAULT_METRICS_URL_PATH
    logs_url_path: str = DEFAULT_LOGS_URL_PATH
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE
    tls: TLSConfig | None = None
    auth: AuthConfig | None = None
    cors: CORSConfig | None = None


@dataclass
class ProtocolsConfig:
    decode_fresh: ClassVar[bool] = True  # see collector.config.decode
    # A protocol not listed under `protocols` is off; listing it with nothing under it turns it on with
    # its defaults (as upstream).
    grpc: GRPCConfig | None = None
    http: HTTPConfig | None = None


@dataclass
class OTLPReceiverConfig:
    protocols: ProtocolsConfig = field(default_factory=lambda: ProtocolsConfig(grpc=GRPCConfig(), http=HTTPConfig()))

    def validate(self) -> list[str]:
        errors: list[str] = []
        grpc, http = self.protocols.grpc, self.protocols.http
        if grpc is None and http is None:
            errors.append("protocols: must specify at least one protocol (grpc or http)")
        if grpc is not None:
            try:
                split_endpoint(grpc.endpoint)
            except ValueError as exc:
                errors.append(f"protocols.grpc.endpoint: {exc}")
            if grpc.max_recv_msg_size_mib <= 0:
                errors.append("protocols.grpc.max_recv_msg_size_mib: must be positive")
            if grpc.tls is not None:
                errors.extend(grpc.tls.validate("protocols.grpc.tls"))
            if grpc.auth is not None and not grpc.auth.authenticator:
                errors.append("protocols.grpc.auth.authenticator: required when auth is set")
        if http is not None:
            try:
                split_endpoint(http.endpoint)
            except ValueError as exc:
                errors.append(f"protocols.http.endpoint: {exc}")
            for key in ("traces_url_path", "metrics_url_path", "logs_url_path"):
                if not getattr(http, key).startswith("/"):
                    errors.append(f"protocols.http.{key}: must start with '/'")
            if http.max_request_body_size <= 0:
                errors.append("protocols.http.max_request_body_size: must be positive")
            if http.tls is not None:
                errors.extend(http.tls.validate("protocols.http.tls"))
            if http.auth is not None and not http.auth.authenticator:
                errors.append("protocols.http.auth.authenticator: required when auth is set")
        return errors

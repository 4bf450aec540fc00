"""Config of the ``otlp`` receiver: the upstream otlpreceiver's keys and defaults (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from collector.confighttp import ServerLimits, split_endpoint
from collector.confighttp import limits as http_limits
from collector.confmap.bounds import above
from processors.pdata import SIGNALS, Signal
from processors.pipeline import Duration

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_GRPC_MAX_CONNECTIONS",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_KEEPALIVE_MIN_TIME",
    "DEFAULT_KEEPALIVE_TIME",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_LOGS_URL_PATH",
    "DEFAULT_MAX_CONCURRENT_STREAMS",
    "DEFAULT_MAX_CONNECTION_IDLE",
    "DEFAULT_MAX_RECV_MSG_SIZE_MIB",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_METRICS_URL_PATH",
    "DEFAULT_TRACES_URL_PATH",
    "AuthConfig",
    "CORSConfig",
    "GRPCConfig",
    "HTTPConfig",
    "KeepaliveConfig",
    "KeepaliveEnforcementConfig",
    "KeepaliveServerConfig",
    "OTLPReceiverConfig",
    "ProtocolsConfig",
    "TLSConfig",
]

# Upstream's defaults since v0.104 bind localhost only; "0.0.0.0:4317" listens on every interface.
DEFAULT_GRPC_ENDPOINT = "localhost:4317"
DEFAULT_HTTP_ENDPOINT = "localhost:4318"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 4  # grpc-go's default receive limit, which upstream keeps
DEFAULT_MAX_REQUEST_BODY_SIZE = http_limits.DEFAULT_MAX_REQUEST_BODY_SIZE  # applies after decompression too
# 0 in grpc-go means unlimited; a bound keeps one connection from opening thousands of concurrent exports.
DEFAULT_MAX_CONCURRENT_STREAMS = 100
# Connections to the gRPC port at once; beyond it grpc refuses new ones (as confighttp.DEFAULT_MAX_CONNECTIONS).
DEFAULT_GRPC_MAX_CONNECTIONS = http_limits.DEFAULT_MAX_CONNECTIONS
# A connection that completes no call for this long is sent GOAWAY (grpc-go's default is never).
DEFAULT_MAX_CONNECTION_IDLE = Duration(60.0)
NEVER = Duration(0.0)
DEFAULT_READ_HEADER_TIMEOUT = Duration(http_limits.DEFAULT_READ_HEADER_TIMEOUT)
DEFAULT_IDLE_TIMEOUT = Duration(http_limits.DEFAULT_IDLE_TIMEOUT)
DEFAULT_KEEPALIVE_TIME = Duration(2 * 3600.0)  # grpc-go's default: ping an idle client after 2 h
DEFAULT_KEEPALIVE_TIMEOUT = Duration(20.0)  # grpc-go's default: close if the ping is not answered in 20 s
DEFAULT_KEEPALIVE_MIN_TIME = Duration(300.0)  # grpc-go's default: clients pinging more often are cut off
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
class KeepaliveServerConfig:
    """configgrpc's ``keepalive.server_parameters`` (0: never)."""

    max_connection_idle: Duration = DEFAULT_MAX_CONNECTION_IDLE
    max_connection_age: Duration = NEVER
    max_connection_age_grace: Duration = NEVER
    time: Duration = DEFAULT_KEEPALIVE_TIME
    timeout: Duration = DEFAULT_KEEPALIVE_TIMEOUT


@dataclass
class KeepaliveEnforcementConfig:
    """configgrpc's ``keepalive.enforcement_policy``: how often clients may ping."""

    min_time: Duration = DEFAULT_KEEPALIVE_MIN_TIME
    permit_without_stream: bool = False


@dataclass
class KeepaliveConfig:
    """configgrpc's ``keepalive``: server pings, connection idle and age limits, and the client ping policy."""

    server_parameters: KeepaliveServerConfig = field(default_factory=KeepaliveServerConfig)
    enforcement_policy: KeepaliveEnforcementConfig = field(default_factory=KeepaliveEnforcementConfig)


@dataclass
class GRPCConfig:
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    max_recv_msg_size_mib: int = field(default=DEFAULT_MAX_RECV_MSG_SIZE_MIB, metadata=above(0))
    max_concurrent_streams: int = field(default=DEFAULT_MAX_CONCURRENT_STREAMS, metadata=above(0))
    max_connections: int = field(default=DEFAULT_GRPC_MAX_CONNECTIONS, metadata=above(0))
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    tls: TLSConfig | None = None
    auth: AuthConfig | None = None


@dataclass
class HTTPConfig:
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    traces_url_path: str = DEFAULT_TRACES_URL_PATH
    metrics_url_path: str = DEFAULT_METRICS_URL_PATH
    logs_url_path: str = DEFAULT_LOGS_URL_PATH
    max_request_body_size: int = field(default=DEFAULT_MAX_REQUEST_BODY_SIZE, metadata=above(0))
    max_request_header_size: int = field(default=http_limits.DEFAULT_MAX_REQUEST_HEADER_SIZE, metadata=above(0))
    read_header_timeout: Duration = field(default=DEFAULT_READ_HEADER_TIMEOUT, metadata=above(0))
    idle_timeout: Duration = field(default=DEFAULT_IDLE_TIMEOUT, metadata=above(0))
    max_connections: int = field(default=http_limits.DEFAULT_MAX_CONNECTIONS, metadata=above(0))
    tls: TLSConfig | None = None
    auth: AuthConfig | None = None
    cors: CORSConfig | None = None

    def limits(self) -> ServerLimits:
        """The listener's limits; the body size is checked by the receiver itself (its errors are OTLP's)."""
        return ServerLimits(
            max_request_body_size=None,
            max_request_header_size=self.max_request_header_size,
            read_header_timeout=self.read_header_timeout,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
        )


@dataclass
class ProtocolsConfig:
    decode_fresh: ClassVar[bool] = True  # see collector.confmap.decode
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
            if http.tls is not None:
                errors.extend(http.tls.validate("protocols.http.tls"))
            if http.auth is not None and not http.auth.authenticator:
                errors.append("protocols.http.auth.authenticator: required when auth is set")
        return errors

"""The ``otlp`` receiver: one instance per id serves gRPC and/or HTTP for every signal it is used for."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from collector.component import Authenticator, Host, Receiver
from collector.receivers.otlp.config import AuthConfig, OTLPReceiverConfig
from collector.receivers.otlp.grpc_server import GRPCServer
from collector.receivers.otlp.http_server import OTLPHTTPServer
from collector.receivers.otlp.intake import Authenticate, Intake, TransportIntake
from processors.pipeline import ComponentID, Consumer, CreateSettings, Signal

__all__ = ["OTLPReceiver"]


def _authenticator(host: Host, auth: AuthConfig | None, where: str) -> Authenticate | None:
    if auth is None or not auth.authenticator:
        return None
    cid = ComponentID.parse(auth.authenticator)
    try:
        extension = host.get_extension(cid)
    except KeyError as exc:
        raise ValueError(
            f"{where}.auth.authenticator: extension {str(cid)!r} is not enabled in service.extensions"
        ) from exc
    if not isinstance(extension, Authenticator):
        raise ValueError(f"{where}.auth.authenticator: extension {str(cid)!r} is not an authenticator")
    check = extension.authenticate

    async def authenticate(headers: dict[str, str]) -> None:
        check(headers)

    return authenticate


class OTLPReceiver(Receiver):
    def __init__(
        self, settings: CreateSettings, config: OTLPReceiverConfig, consumers: Mapping[Signal, Consumer]
    ) -> None:
        self.settings = settings
        self.config = config
        self.intake = Intake(settings, consumers)
        self.grpc: GRPCServer | None = None
        self.http: OTLPHTTPServer | None = None

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc else 0

    @property
    def http_port(self) -> int:
        return self.http.port if self.http else 0

    async def start(self, host: Host) -> None:
        protocols = self.config.protocols
        if protocols.grpc is not None:
            self.grpc = GRPCServer(protocols.grpc, self._transport(host, "grpc", protocols.grpc.auth))
            await self.grpc.start()
            self._listening("OTLP/gRPC", protocols.grpc.endpoint, self.grpc.port)
        if protocols.http is not None:
            self.http = OTLPHTTPServer(protocols.http, self._transport(host, "http", protocols.http.auth))
            await self.http.start()
            self._listening("OTLP/HTTP", protocols.http.endpoint, self.http.port)

    def _transport(self, host: Host, name: str, auth: AuthConfig | None) -> TransportIntake:
        """The intake as transport ``name`` enters it. Made on the service's loop, where the pipeline (and gRPC)
        runs; the HTTP listener reads and decodes on a loop of its own."""
        authenticate = _authenticator(host, auth, f"protocols.{name}")
        return TransportIntake(self.intake, name, authenticate, asyncio.get_running_loop())

    def _listening(self, protocol: str, endpoint: str, port: int) -> None:
        self.settings.logger.info("receiver %s: %s on %s (port %d)", self.settings.id, protocol, endpoint, port)

    async def shutdown(self) -> None:
        # Both stop accepting and let in-flight requests finish before returning.
        if self.http is not None:
            await self.http.shutdown()
        if self.grpc is not None:
            await self.grpc.shutdown()

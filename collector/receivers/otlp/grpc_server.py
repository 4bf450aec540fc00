"""OTLP/gRPC: the Trace, Metrics and Logs services on one grpc.aio server.

The methods are registered as generic handlers over raw bytes (the service and method names are those of the
opentelemetry-proto stubs) so that a body that does not parse is answered INVALID_ARGUMENT with the reason,
rather than grpc's generic INTERNAL for a failed deserializer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from collector.receivers.otlp.config import GRPCConfig
from collector.receivers.otlp.intake import Intake
from processors.pdata import SIGNALS, Signal, parse_request
from processors.pipeline import DataError, RefusedError, RetryableError

__all__ = ["GRPCServer"]

# In-flight RPCs get this long to finish when the receiver stops (within the service's shutdown bound).
SHUTDOWN_GRACE_SECONDS = 5.0

_log = logging.getLogger("otel_metrics.collector")


def _retry_metadata(message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """RetryInfo twice: inside the rich status (grpc-status-details-bin, what grpc-go clients read) and bare
    under google.rpc.retryinfo-bin (what the Python OTLP exporter reads)."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(int(retry_after * 1e9))
    status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message)
    status.details.add().Pack(info)
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )


class GRPCServer:
    def __init__(
        self,
        config: GRPCConfig,
        intake: Intake,
        authenticate: Callable[[dict[str, str]], Awaitable[None]] | None,
    ) -> None:
        self._config = config
        self._intake = intake
        self._authenticate = authenticate
        self._server: grpc.aio.Server | None = None
        self.port = 0

    def _handler(self, signal: Signal) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]:
        async def export(body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            if self._authenticate is not None:
                headers = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
                try:
                    await self._authenticate(headers)
                except Exception as exc:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc) or "unauthenticated")
            try:
                request = parse_request(signal, body)
            except DecodeError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf {signal.value}: {exc}")
            try:
                response = await self._intake.export(signal, request, "grpc", body)
            except DataError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except (RefusedError, RetryableError) as exc:
                metadata = _retry_metadata(str(exc), exc.retry_after or 1.0)
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), trailing_metadata=metadata)
            except Exception as exc:
                # Not known to be permanent: the upstream receiver answers Unavailable so the client retries.
                _log.exception("receiver %s: pipeline failed", self._intake.settings.id)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"pipeline error: {exc}")
            data: bytes = response.SerializeToString()
            return data

        return export

    async def start(self) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self._config.max_recv_msg_size_mib * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
        if self._config.max_concurrent_streams > 0:
            options.append(("grpc.max_concurrent_streams", self._config.max_concurrent_streams))
        server = grpc.aio.server(options=options)
        for signal, spec in SIGNALS.items():
            if not self._intake.serves(signal):
                continue
            handler = grpc.unary_unary_rpc_method_handler(self._handler(signal))
            generic = grpc.method_handlers_generic_handler(spec.grpc_service, {"Export": handler})
            server.add_generic_rpc_handlers((generic,))
        tls = self._config.tls
        try:
            if tls is not None and tls.cert_file:
                with open(tls.key_file, "rb") as key, open(tls.cert_file, "rb") as cert:
                    credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
                self.port = server.add_secure_port(self._config.endpoint, credentials)
            else:
                self.port = server.add_insecure_port(self._config.endpoint)
        except (RuntimeError, OSError) as exc:
            raise OSError(f"gRPC cannot listen on {self._config.endpoint}: {exc}") from exc
        if self.port == 0:
            raise OSError(f"gRPC cannot listen on {self._config.endpoint}")
        await server.start()
        self._server = server

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop(SHUTDOWN_GRACE_SECONDS)
            self._server = None

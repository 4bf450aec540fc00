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
from processors.memory_limiter import admit
from processors.pdata import SIGNALS, Signal, parse_request
from processors.pipeline import DataError, RefusedError, RetryableError

__all__ = ["GRPCServer", "server_options"]

# Request metadata (headers) larger than this is refused, as confighttp.DEFAULT_MAX_REQUEST_HEADER_SIZE for HTTP.
MAX_METADATA_SIZE = 64 * 1024
# A connection must finish its TLS/HTTP2 handshake within this, as confighttp.DEFAULT_READ_HEADER_TIMEOUT for HTTP.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
_INFINITE_MS = 2**31 - 1
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


def _fail(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    details: str,
    metadata: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """Answer ``code`` by returning, not by ``context.abort``: abort raises inside the handler's except block, and
    that exception's traceback keeps the handler's frames, with the request's bytes and decoded message, alive in
    a reference cycle until the cyclic GC runs. Under a flood of refused requests that was hundreds of MiB."""
    context.set_code(code)
    context.set_details(details)
    if metadata:
        context.set_trailing_metadata(metadata)
    return b""


def _unavailable(context: grpc.aio.ServicerContext[Any, Any], exc: RefusedError | RetryableError) -> bytes:
    return _fail(context, grpc.StatusCode.UNAVAILABLE, str(exc), _retry_metadata(str(exc), exc.retry_after or 1.0))


def _ms(seconds: float) -> int:
    """grpc core's milliseconds; 0 seconds (never) is its "infinite"."""
    return int(seconds * 1000) if seconds > 0 else _INFINITE_MS


def server_options(config: GRPCConfig) -> list[tuple[str, Any]]:
    """grpc core channel arguments for ``config``'s limits (configgrpc's keys, grpc core's names)."""
    server_params = config.keepalive.server_parameters
    policy = config.keepalive.enforcement_policy
    return [
        ("grpc.max_receive_message_length", config.max_recv_msg_size_mib * 1024 * 1024),
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
        ("grpc.max_allowed_incoming_connections", config.max_connections),
        ("grpc.max_metadata_size", MAX_METADATA_SIZE),
        ("grpc.server_handshake_timeout_ms", _ms(HANDSHAKE_TIMEOUT_SECONDS)),
        ("grpc.max_connection_idle_ms", _ms(server_params.max_connection_idle)),
        ("grpc.max_connection_age_ms", _ms(server_params.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _ms(server_params.max_connection_age_grace)),
        ("grpc.keepalive_time_ms", _ms(server_params.time)),
        ("grpc.keepalive_timeout_ms", _ms(server_params.timeout)),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(policy.min_time)),
        ("grpc.keepalive_permit_without_calls", int(policy.permit_without_stream)),
        ("grpc.so_reuseport", 0),
    ]


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
                    return _fail(context, grpc.StatusCode.UNAUTHENTICATED, str(exc) or "unauthenticated")
            try:
                admission = admit(len(body))  # before decoding: memory_limiter refuses what would not fit
            except RefusedError as exc:
                return _unavailable(context, exc)
            with admission:
                return await self._export(signal, body, context)

        return export

    async def _export(self, signal: Signal, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """Decode ``body`` and hand it to the pipeline; the status that fits a failure."""
        try:
            request = parse_request(signal, body)
        except DecodeError as exc:
            return _fail(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf {signal.value}: {exc}")
        try:
            response = await self._intake.export(signal, request, "grpc", body)
        except DataError as exc:
            return _fail(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (RefusedError, RetryableError) as exc:
            return _unavailable(context, exc)
        except Exception as exc:
            # Not known to be permanent: the upstream receiver answers Unavailable so the client retries.
            _log.exception("receiver %s: pipeline failed", self._intake.settings.id)
            return _fail(context, grpc.StatusCode.UNAVAILABLE, f"pipeline error: {exc}")
        data: bytes = response.SerializeToString()
        return data

    async def start(self) -> None:
        server = grpc.aio.server(options=server_options(self._config))
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

"""OTLP/gRPC: the Trace, Metrics and Logs services on one grpc.aio server, on the service's event loop, where the
pipeline runs. A call that crossed to another thread's loop cost twice the context switches of the whole request
(26-27 per 512-span request against 12-14) and a sixth of the forwarding rate; what would hold the loop for long
(the bad-id check and the processors' work on a large request) goes to a worker thread instead (``ProcessorRun``).

The methods are registered as generic handlers over raw bytes (the service and method names are those of the
opentelemetry-proto stubs) so that a body that does not parse is answered INVALID_ARGUMENT with the reason,
rather than grpc's generic INTERNAL for a failed deserializer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from collector.receivers.otlp.config import GRPCConfig
from collector.receivers.otlp.intake import TransportIntake
from processors.memory_limiter import admit, concurrent_calls
from processors.pdata import SIGNALS, Signal, item_count, new_response, parse_request
from processors.pipeline import DataError, RefusedError, RetryableError

__all__ = ["CallLimit", "GRPCServer", "server_options"]

# Request metadata (headers) larger than this is refused, as confighttp.DEFAULT_MAX_REQUEST_HEADER_SIZE for HTTP.
MAX_METADATA_SIZE = 64 * 1024
# A connection must finish its TLS/HTTP2 handshake within this, as confighttp.DEFAULT_READ_HEADER_TIMEOUT for HTTP.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
_INFINITE_MS = 2**31 - 1
# In-flight RPCs get this long to finish when the receiver stops (within the service's shutdown bound).
SHUTDOWN_GRACE_SECONDS = 5.0

_log = logging.getLogger("otel_metrics.collector")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


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


async def _only_message(context: Context) -> bytes | None:
    """The call's one request message; None if the client sent none or more than one."""
    message = await context.read()
    if message is grpc.aio.EOF or await context.read() is not grpc.aio.EOF:
        return None
    assert isinstance(message, bytes)
    return message


class CallLimit:
    """At most ``running`` calls read or process a message at once (None: no bound); a call beyond that is refused
    before its message is read, UNAVAILABLE with RetryInfo as the memory limiter refuses. Refused, not queued: a
    queued call's client keeps sending, and its message piles up in grpc's buffers all the same. grpc's own
    ``maximum_concurrent_rpcs`` refuses RESOURCE_EXHAUSTED without RetryInfo, which upstream exporters do not
    retry."""

    def __init__(self, running: int | None) -> None:
        self.running = running
        self._active = 0

    async def __aenter__(self) -> None:
        if self.running is not None and self._active >= self.running:
            raise RefusedError(f"too many calls in flight ({self.running}, from memory_limiter's spike allowance)")
        self._active += 1

    async def __aexit__(self, *exc: object) -> None:
        self._active -= 1


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
    def __init__(self, config: GRPCConfig, intake: TransportIntake) -> None:
        self._config = config
        self._intake = intake
        self._server: grpc.aio.Server | None = None
        self._calls = CallLimit(None)
        self.port = 0

    def _handler(self, signal: Signal) -> Callable[[AsyncIterator[bytes], Context], Awaitable[bytes]]:
        # A stream-unary method over the wire's unary call: grpc reads a unary call's message before its handler
        # runs, a stream's only when the handler asks. So authentication and the call bound come before a byte of
        # the body is read.
        async def export(requests: AsyncIterator[bytes], context: Context) -> bytes:
            if self._intake.authenticate is not None:
                headers = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
                try:
                    await self._intake.authenticate(headers)
                except Exception as exc:
                    return _fail(context, grpc.StatusCode.UNAUTHENTICATED, str(exc) or "unauthenticated")
            body: bytes | None = None
            try:
                async with self._calls:
                    body = await _only_message(context)
                    if body is None:
                        return _fail(context, grpc.StatusCode.INVALID_ARGUMENT, f"one {signal.value} request expected")
                    admission = admit(len(body))  # before decoding: memory_limiter refuses what would not fit
                    with admission:
                        return await self._export(signal, body, context)
            except RefusedError as exc:
                self._intake.refused_before_decoding(signal, body)
                return _unavailable(context, exc)

        return export

    async def _export(self, signal: Signal, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """Decode ``body`` and hand it to the pipeline; the status that fits a failure."""
        try:
            request = parse_request(signal, body)
        except DecodeError as exc:
            return _fail(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf {signal.value}: {exc}")
        if item_count(signal, request) == 0:  # nothing for the pipeline: answered here, not behind its work
            data: bytes = new_response(signal).SerializeToString()
            return data
        try:
            response = await self._intake.export(signal, request, body)
        except DataError as exc:
            return _fail(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (RefusedError, RetryableError) as exc:
            return _unavailable(context, exc)
        except Exception as exc:
            # Not known to be permanent: the upstream receiver answers Unavailable so the client retries.
            _log.exception("receiver %s: pipeline failed", self._intake.settings.id)
            return _fail(context, grpc.StatusCode.UNAVAILABLE, f"pipeline error: {exc}")
        answer: bytes = response.SerializeToString()
        return answer

    async def start(self) -> None:
        # Calls reading or processing a message, bounded by memory_limiter's spike allowance if one runs: a message
        # is in memory before admit() can look at its size (48 unthrottled clients held 1.35-1.54x limit_mib).
        self._calls = CallLimit(concurrent_calls(self._config.max_recv_msg_size_mib * 1024 * 1024))
        options = server_options(self._config)
        if self._calls.running is not None:
            # grpc core grows a stream's flow-control window to the link's bandwidth-delay product, on loopback the
            # whole message, which it then receives whether or not a handler reads it: 48 clients whose calls were
            # refused unread still held 3.1x limit_mib. Without the probe a call's unread data is its 64 KiB window
            # (at the cost of a round trip per 64 KiB for a large message over a slow link).
            options.append(("grpc.http2.bdp_probe", 0))
        server = grpc.aio.server(options=options)
        for signal, spec in SIGNALS.items():
            if not self._intake.serves(signal):
                continue
            handler = grpc.stream_unary_rpc_method_handler(self._handler(signal))
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
        server, self._server = self._server, None
        if server is not None:
            await server.stop(SHUTDOWN_GRACE_SECONDS)

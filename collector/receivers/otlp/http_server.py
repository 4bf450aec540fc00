"""OTLP/HTTP: POST /v1/traces, /v1/metrics, /v1/logs with protobuf or JSON bodies, optionally compressed (gzip,
deflate, zstd or snappy: what the upstream Collector's exporters send).

Status codes follow the OTLP/HTTP spec: 400 malformed, 413 too large (checked on the wire *and* after
decompression, so a gzip bomb is cut off at ``max_request_body_size``), 415 unsupported content type, 503
with Retry-After when the pipeline refuses (OTLP clients retry it), 401 when authentication fails. Error
bodies are a ``google.rpc.Status`` in the request's encoding, as upstream answers.

A request is handled on the listener's own thread and loop (``collector.confighttp``): content type, auth,
``_read`` (body and decompression), ``_decode``; only ``Intake.export`` (the pipeline) runs on the service's loop.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Awaitable, Callable

import cramjam
import zstandard
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.confighttp import BodyTooLarge, HTTPServer, read_body
from collector.receivers.otlp.config import HTTPConfig
from collector.receivers.otlp.intake import TransportIntake
from processors.memory_limiter import Admission, admit
from processors.pdata import JSONError, Signal, from_json, new_request, parse_request, to_json
from processors.pipeline import DataError, RefusedError, RetryableError

__all__ = ["OTLPHTTPServer"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_log = logging.getLogger("otel_metrics.collector")

# grpc codes used in the Status body (google.rpc.Code numbers)
_INVALID_ARGUMENT, _UNAUTHENTICATED, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 16, 8, 14


class _Malformed(Exception):
    pass


def _error(status: int, code: int, message: str, encoding: str, headers: dict[str, str] | None = None) -> Response:
    body = status_pb2.Status(code=code, message=message)
    if encoding == PROTOBUF:
        return Response(body.SerializeToString(), status, headers=headers, media_type=PROTOBUF)
    return Response(json_format.MessageToJson(body, indent=None), status, headers=headers, media_type=JSON)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "zstd":
        return _unzstd(body, limit)
    if encoding == "snappy":
        return _unsnappy(body, limit)
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj()
    else:
        raise _Malformed(f"unsupported Content-Encoding {encoding!r} (supported: gzip, deflate, zstd, snappy)")
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Malformed(f"invalid {encoding} body: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLarge(f"decompressed body exceeds max_request_body_size ({limit} bytes)")
    if not inflater.eof:
        raise _Malformed(f"truncated {encoding} body")
    return out


def _unzstd(body: bytes, limit: int) -> bytes:
    # Streamed, so a zstd bomb stops at the limit instead of inflating whole.
    try:
        with zstandard.ZstdDecompressor().stream_reader(body) as reader:
            out = bytearray()
            while chunk := reader.read(min(1 << 20, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise BodyTooLarge(f"decompressed body exceeds max_request_body_size ({limit} bytes)")
    except zstandard.ZstdError as exc:
        raise _Malformed(f"invalid zstd body: {exc}") from exc
    return bytes(out)


def _unsnappy(body: bytes, limit: int) -> bytes:
    """Snappy block format, as upstream's ``compression: snappy`` sends it. The block starts with its decoded length
    (a uvarint), read here before decoding: cramjam has no bounded decode."""
    length, shift = 0, 0
    for index, byte in enumerate(body[:10]):
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if index == 9:
            raise _Malformed("invalid snappy body: bad length header")
    if length > limit:
        raise BodyTooLarge(f"decompressed body exceeds max_request_body_size ({limit} bytes)")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise _Malformed(f"invalid snappy body: {exc}") from exc


def _refused(exc: RefusedError | RetryableError, media: str, headers: dict[str, str] | None = None) -> Response:
    retry_after = str(max(1, math.ceil(exc.retry_after or 1.0)))
    return _error(503, _UNAVAILABLE, str(exc), media, {"Retry-After": retry_after, **(headers or {})})


def _decode(signal: Signal, media: str, body: bytes) -> Message:
    """The ``signal``'s request from a protobuf or OTLP/JSON body; _Malformed says what is wrong."""
    if media == PROTOBUF:
        try:
            return parse_request(signal, body)
        except DecodeError as exc:
            raise _Malformed(f"malformed protobuf {signal.value} request: {exc}") from exc
    try:
        return from_json(body, new_request(signal))
    except JSONError as exc:
        raise _Malformed(f"malformed OTLP/JSON {signal.value} request: {exc}") from exc


class OTLPHTTPServer:
    def __init__(self, config: HTTPConfig, intake: TransportIntake) -> None:
        self._config = config
        self._intake = intake
        routes = [
            Route(path, self._endpoint(signal), methods=["POST"])
            for signal, path in (
                (Signal.TRACES, config.traces_url_path),
                (Signal.METRICS, config.metrics_url_path),
                (Signal.LOGS, config.logs_url_path),
            )
            if intake.serves(signal)
        ]
        middleware = []
        if config.cors is not None and config.cors.allowed_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=config.cors.allowed_origins,
                    allow_headers=config.cors.allowed_headers,
                    allow_methods=["POST"],
                    max_age=config.cors.max_age or 600,
                )
            )
        tls = config.tls
        self._server = HTTPServer(
            Starlette(routes=routes, middleware=middleware),
            config.endpoint,
            cert_file=tls.cert_file if tls and tls.cert_file else None,
            key_file=tls.key_file if tls and tls.key_file else None,
            limits=config.limits(),
            name=f"otlp http ({intake.settings.id})",
        )

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()

    async def shutdown(self) -> None:
        await self._server.shutdown()

    async def _read(self, request: Request) -> bytes:
        """The request body, decompressed; BodyTooLarge over ``max_request_body_size`` (wire or decompressed)."""
        limit = self._config.max_request_body_size
        raw = await read_body(request, limit)
        return _decompress(raw, request.headers.get("content-encoding", "").strip().lower(), limit)

    def _endpoint(self, signal: Signal) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media not in (PROTOBUF, JSON):
                return _error(
                    415,
                    _INVALID_ARGUMENT,
                    f"unsupported Content-Type {media or '(none)'!r}: use {PROTOBUF} or {JSON}",
                    JSON,
                )
            if self._intake.authenticate is not None:
                try:
                    await self._intake.authenticate(dict(request.headers))
                except Exception as exc:
                    return _error(401, _UNAUTHENTICATED, str(exc) or "unauthenticated", media)
            try:
                declared = max(int(request.headers.get("content-length") or 0), 0)
            except ValueError:
                declared = 0
            try:
                admission = admit(declared)  # before reading and decoding: memory_limiter refuses what won't fit
            except RefusedError as exc:
                self._intake.refused_before_decoding(signal, None)
                return _refused(exc, media, {"Connection": "close"})  # the body stays unread
            with admission:
                return await self._admitted(signal, media, request, declared, admission)

        return handle

    async def _admitted(
        self, signal: Signal, media: str, request: Request, declared: int, admission: Admission
    ) -> Response:
        try:
            body = await self._read(request)
            if len(body) > declared:  # no Content-Length (chunked), or decompressed: reserve the rest too
                admission.grow(len(body) - declared)
            message = _decode(signal, media, body)
        except BodyTooLarge as exc:
            # close: the rest of a body we refused unread must not be taken for the next request
            return _error(413, _RESOURCE_EXHAUSTED, str(exc), media, {"Connection": "close"})
        except _Malformed as exc:
            return _error(400, _INVALID_ARGUMENT, str(exc), media)
        except RefusedError as exc:
            self._intake.refused_before_decoding(signal, bytes(body) if media == PROTOBUF else None)
            return _refused(exc, media)
        try:
            wire = bytes(body) if media == PROTOBUF else None
            response = await self._intake.export(signal, message, wire)
        except DataError as exc:
            return _error(400, _INVALID_ARGUMENT, str(exc), media)
        except (RefusedError, RetryableError) as exc:
            return _refused(exc, media)
        except Exception as exc:
            # Not known to be permanent: upstream answers 503 so that the client retries.
            _log.exception("receiver %s: pipeline failed", self._intake.settings.id)
            return _error(503, _UNAVAILABLE, f"pipeline error: {exc}", media, {"Retry-After": "1"})
        if media == PROTOBUF:
            return Response(response.SerializeToString(), 200, media_type=PROTOBUF)
        return Response(to_json(response), 200, media_type=JSON)

"""Requests bounded before they are read: an ASGI middleware every listener gets, and a body reader for apps.

A header block over the limit is answered 431 (h11 already refuses to buffer an unfinished one past it; this
catches one that arrived whole in a single read). A body declared larger than the limit is refused from its
``Content-Length`` alone, without reading a byte of it, and the connection is closed (so a client declaring
256 MiB costs nothing); a chunked body is counted as it arrives and refused the moment it passes the limit.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyTooLarge", "RequestLimits", "read_body"]


class BodyTooLarge(Exception):
    """The request body is over the listener's ``max_request_body_size`` (HTTP 413)."""


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large_message(limit: int, declared: int | None) -> bytes:
    if limit == 0:
        return b"this endpoint takes no request body\n"
    size = f"of {declared} bytes " if declared is not None else ""
    return f"request body {size}exceeds max_request_body_size ({limit} bytes)\n".encode()


class RequestLimits:
    """Answers 431 for headers over ``header_limit`` bytes and 413 (closing the connection) for a body over
    ``body_limit`` bytes; a ``body_limit`` of 0 refuses any body, None leaves bodies to the app."""

    def __init__(self, app: ASGIApp, header_limit: int, body_limit: int | None) -> None:
        self.app = app
        self.header_limit = header_limit
        self.limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > self.header_limit:
            await _refuse(send, 431, f"request headers exceed {self.header_limit} bytes\n".encode())
            return
        if self.limit is None:
            await self.app(scope, receive, send)
            return
        limit: int = self.limit
        declared = _declared_length(scope)
        chunked = any(name == b"transfer-encoding" for name, _ in scope["headers"])
        if (declared is not None and declared > limit) or (limit == 0 and chunked):
            await _refuse(send, 413, _too_large_message(limit, declared))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_too_large_message(limit, None).decode().strip())
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, 413, f"{exc}\n".encode())


async def _refuse(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # an unread body must not be taken for the next request
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (BodyTooLarge) a declared or received length over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds max_request_body_size ({limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds max_request_body_size ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)

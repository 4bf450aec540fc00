"""FastAPI integration: OTel's FastAPI instrumentation plus correlation ids and header-mapped business
metadata.

``instrument_app(app)`` reads ``X-Correlation-ID`` (or ``X-Request-ID``, or a ``correlation.id`` in
incoming W3C
baggage), validates it or generates one, runs the request under it, and echoes ``X-Correlation-ID`` on every
response: 2xx, 4xx, 5xx and unhandled exceptions. It is pure ASGI middleware (no BaseHTTPMiddleware) installed
*outside* Starlette's ServerErrorMiddleware, so even the 500 for an unhandled exception carries the header.

At lifespan shutdown, which servers run once the last request has finished, telemetry is flushed (bounded, off the
event loop): uvicorn (>= 0.29) re-raises SIGTERM after its graceful shutdown with the default handler back, and the
process dies without running ``atexit``, where the SDK would flush the last requests' spans.

Why the incoming ``baggage`` header is rewritten: the OTel ASGI middleware builds the server span's
parent context
from the request headers alone, so the validated id must be in those headers for the server span (and every
span and outgoing request after it) to carry it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

try:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "otel_metrics.fastapi needs FastAPI and its OpenTelemetry instrumentation: pip install 'otel-metrics[fastapi]'"
    ) from exc

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from otel_metrics._internal.config import flush_before_exit
from otel_metrics._internal.safety import internal_error
from otel_metrics._internal.scopes import clean_attributes, resolve_correlation_id
from processors.business import set_business_attributes
from processors.correlation import set_correlation_id

__all__ = ["CORRELATION_HEADER", "REQUEST_ID_HEADER", "instrument_app"]

CORRELATION_HEADER = "x-correlation-id"
REQUEST_ID_HEADER = "x-request-id"
_CORRELATION_HEADER_B = CORRELATION_HEADER.encode()
_REQUEST_ID_HEADER_B = REQUEST_ID_HEADER.encode()
_BAGGAGE_B = b"baggage"
_BAGGAGE_KEY = "correlation.id"
_STATE_KEY = "otel_metrics"
_logger = logging.getLogger("otel_metrics.fastapi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    found: dict[bytes, str] = {}
    for name, value in headers:
        lname = name.lower()
        if lname in (_CORRELATION_HEADER_B, _REQUEST_ID_HEADER_B) and lname not in found:
            found[lname] = value.decode("latin-1").strip()
        elif lname == _BAGGAGE_B:
            for member in value.decode("latin-1").split(","):
                key, sep, rest = member.partition("=")
                if sep and key.strip() == _BAGGAGE_KEY and _BAGGAGE_B not in found:
                    found[_BAGGAGE_B] = rest.split(";", 1)[0].strip()
    for header in (_CORRELATION_HEADER_B, _REQUEST_ID_HEADER_B, _BAGGAGE_B):
        if header in found:
            return found[header]
    return None


def _with_baggage(headers: list[tuple[bytes, bytes]], correlation_id: str) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    members: list[str] = []
    for name, value in headers:
        if name.lower() == _BAGGAGE_B:
            members.extend(
                m
                for m in value.decode("latin-1").split(",")
                if m.strip() and m.split("=", 1)[0].strip() != _BAGGAGE_KEY
            )
        else:
            out.append((name, value))
    members.append(f"{_BAGGAGE_KEY}={correlation_id}")
    out.append((_BAGGAGE_B, ",".join(m.strip() for m in members).encode("latin-1")))
    return out


class CorrelationMiddleware:
    """Outermost: pick the id, put it in the request's baggage header, echo it on the response."""

    def __init__(self, app: ASGIApp, header_attributes: Mapping[str, str]) -> None:
        self.app = app
        self.header_attributes = {k.lower().encode("latin-1"): v for k, v in header_attributes.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, _flushing_at_shutdown(send) if scope.get("type") == "lifespan" else send)
            return
        try:
            headers = list(scope.get("headers") or [])
            requested = _incoming_id(headers)
            correlation_id = resolve_correlation_id(requested, source="HTTP request") if requested else None
            if correlation_id is None:
                correlation_id = resolve_correlation_id(None)
            business: dict[str, Any] = {}
            for name, value in headers:
                attr = self.header_attributes.get(name.lower())
                if attr is not None and attr not in business:
                    business[attr] = value.decode("latin-1")
            scope = dict(scope)
            scope["headers"] = _with_baggage(headers, correlation_id)
            state = dict(scope.get("state") or {})
            state[_STATE_KEY] = (correlation_id, clean_attributes(business, where="instrument_app headers"))
            scope["state"] = state
            echo = (_CORRELATION_HEADER_B, correlation_id.encode("latin-1"))
        except Exception:
            internal_error("fastapi CorrelationMiddleware")
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
                try:
                    resp_headers = [
                        (n, v) for n, v in message.get("headers") or [] if n.lower() != _CORRELATION_HEADER_B
                    ]
                    resp_headers.append(echo)
                    message = dict(message)
                    message["headers"] = resp_headers
                except Exception:
                    internal_error("fastapi echo header")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if started:
                raise  # the server already answered (Starlette's 500) and logs the app's exception
            await send_with_id(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]}
            )
            await send_with_id({"type": "http.response.body", "body": b"Internal Server Error"})
            raise


def _flushing_at_shutdown(send: Send) -> Send:
    """Flush telemetry before the app reports its lifespan shutdown complete. The server runs the shutdown after the
    last request finished, so every server span has ended; and uvicorn then re-raises SIGTERM with the default
    handler back, killing the process before ``atexit`` (where the SDK flushes) can run."""

    async def send_after_flush(message: Message) -> None:
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            try:
                await asyncio.to_thread(flush_before_exit)  # bounded; off the loop: exporting is network I/O
            except Exception:
                internal_error("fastapi flush at shutdown")
        await send(message)

    return send_after_flush


class BusinessContextMiddleware:
    """Inside the OTel server span: run the request in the correlation id and the header-mapped attributes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = None
        try:
            found = (scope.get("state") or {}).get(_STATE_KEY)
            if found is not None:
                correlation_id, business = found
                ctx = set_correlation_id(correlation_id)
                if business:
                    # In W3C baggage too: the services this request calls (any language) charge their work,
                    # their priced API calls included, to the same tenant and user. Only the attributes the app
                    # mapped from headers travel: that mapping is the allow-list.
                    ctx = set_business_attributes(business, context=ctx, propagate=True)
                    span = trace_api.get_current_span()
                    if span.is_recording():
                        span.set_attributes(business)
                token = context_api.attach(ctx)
        except Exception:
            internal_error("fastapi BusinessContextMiddleware")
        try:
            await self.app(scope, receive, send)
        finally:
            if token is not None:
                context_api.detach(token)


def instrument_app(
    app: Any,
    *,
    header_attributes: Mapping[str, str] | None = None,
    excluded_urls: str | None = None,
    **instrumentor_kwargs: Any,
) -> Any:
    """Instrument a FastAPI app: OTel server spans and metrics, correlation ids, header-mapped business
    metadata.

    ``header_attributes`` maps request headers to business attributes, e.g. ``{"x-tenant-id": "tenant.id"}``;
    they go on the request's spans and, in W3C baggage, downstream to every service the request calls.
    ``excluded_urls`` is passed to the OTel instrumentation (comma-separated regexes). Call before the app
    serves its first request. Returns ``app``. Never raises (a failure is logged and the app left as it was).
    """
    try:
        if getattr(app, "_otel_metrics_instrumented", False):
            return app
        # The ASGI instrumentation's per-message "http send"/"http receive" spans triple the span count of every
        # request and carry nothing a latency or cost question needs; pass exclude_spans=[] to keep them.
        instrumentor_kwargs.setdefault("exclude_spans", ["receive", "send"])
        FastAPIInstrumentor.instrument_app(app, excluded_urls=excluded_urls, **instrumentor_kwargs)
        app.add_middleware(BusinessContextMiddleware)
        inner_build = app.build_middleware_stack
        mapping = dict(header_attributes or {})

        def build_middleware_stack() -> ASGIApp:
            return CorrelationMiddleware(inner_build(), mapping)

        app.build_middleware_stack = build_middleware_stack
        app._otel_metrics_instrumented = True
    except Exception:
        internal_error("instrument_app")
    return app

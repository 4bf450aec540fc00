"""The Host header check of the analytics API: only the loopback names, the endpoint's own address and the
configured ``allowed_hosts`` are answered, so a foreign web page cannot reach a local API by rebinding its own
DNS name to 127.0.0.1 (the browser would send that foreign name as Host).

Starlette's TrustedHostMiddleware does this for names, but reads ``[::1]:8890`` as the host ``[``; IPv6 listeners
need the brackets understood, hence this small middleware.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from .config import AnalyticsConfig, is_loopback

__all__ = ["HostCheck", "allowed_hosts", "host_name"]

_WILDCARDS = ("", "0.0.0.0", "::")


def allowed_hosts(config: AnalyticsConfig) -> frozenset[str]:
    """The names a Host header may carry besides loopback ones: the endpoint's address unless it is a wildcard,
    and ``allowed_hosts`` ("*" for any)."""
    endpoint_host = config.endpoint.rpartition(":")[0].strip("[]").lower()
    names = {h.strip().strip("[]").lower() for h in config.allowed_hosts}
    if endpoint_host not in _WILDCARDS:
        names.add(endpoint_host)
    return frozenset(names)


def host_name(header: str) -> str:
    """The host of a Host header value, without port or IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    return header.rpartition(":")[0] if ":" in header else header


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    def accepts(self, header: str | None) -> bool:
        if header is None:
            return False
        name = host_name(header)
        return "*" in self.allowed or name in self.allowed or is_loopback(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not self.accepts(header):
                body = json.dumps({"error": f"Host {header!r} is not served here (allowed_hosts)"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

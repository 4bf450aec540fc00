"""A Prometheus scrape endpoint as an ASGI app: ``GET``/``HEAD`` on one path, gzip when asked, nothing else.

Shared by the prometheus exporter (8889) and the collector's own telemetry (8888). It takes no request body (the
server's ``ADMIN_LIMITS`` refuse one unread).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["Render", "scrape_app"]

# (the request's Accept header) -> (content type, exposition)
Render = Callable[[str], tuple[str, bytes]]

# Bodies below this are sent uncompressed: gzip costs more than it saves on a small scrape.
_GZIP_MIN_BYTES = 4096
_log = logging.getLogger("otel_metrics.collector")


def scrape_app(render: Render, path: str = "/metrics") -> Starlette:
    """``render`` runs on the listener's own thread; it must be safe to call there."""

    async def scrape(request: Request) -> Response:
        try:
            content_type, body = render(request.headers.get("accept", ""))
        except Exception:
            _log.exception("rendering %s failed", path)
            return PlainTextResponse("rendering failed\n", 500)
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", "") and len(body) >= _GZIP_MIN_BYTES:
            body = gzip.compress(body, 1)
            headers["content-encoding"] = "gzip"
        return Response(body, 200, headers=headers, media_type=content_type)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"not found; metrics are at {path}\n", 404)

    return Starlette(routes=[Route(path, scrape, methods=["GET", "HEAD"])], exception_handlers={404: not_found})

"""A minimal asyncio HTTP/1.1 server for ``GET /metrics`` (keep-alive, gzip, HEAD, TLS).

A scrape endpoint needs one route, so this is a few dozen lines on ``asyncio.start_server`` in the
collector's own
loop rather than a second ASGI server per exporter; it is shared with the collector's self-telemetry (8888).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import ssl
from collections.abc import Awaitable, Callable

_log = logging.getLogger("otel_metrics.collector.exporter.prometheus")

# (Accept header) -> (content type, body)
Handler = Callable[[str], Awaitable[tuple[str, bytes]]]

_MAX_HEADER_BYTES = 64 * 1024
# Bodies below this are sent uncompressed: gzip costs more than it saves on a small scrape.
_GZIP_MIN_BYTES = 4096
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


def parse_endpoint(endpoint: str) -> tuple[str | None, int]:
    """``host:port`` / ``[v6]:port`` / ``:port`` → (host or None for all interfaces, port)."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"endpoint {endpoint!r}: expected host:port (port 0-65535)")
    host = host.strip("[]")
    return (host or None), int(port)


class MetricsServer:
    """Serves ``path`` with ``handler``; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, handler: Handler, path: str = "/metrics") -> None:
        self._handler = handler
        self._path = path
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, endpoint: str, ssl_context: ssl.SSLContext | None = None) -> None:
        host, port = parse_endpoint(endpoint)
        self._server = await asyncio.start_server(self._serve, host, port, ssl=ssl_context, limit=_MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self._respond(writer, 400, "text/plain", b"bad request line\n", False, False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        path = target.split("?", 1)[0]
        if path != self._path:
            await self._respond(
                writer,
                404,
                "text/plain",
                b"not found; metrics are at %s\n" % self._path.encode(),
                keep_alive,
                method == "HEAD",
            )
        elif method not in ("GET", "HEAD"):
            await self._respond(writer, 405, "text/plain", b"only GET\n", keep_alive, False)
        else:
            try:
                content_type, body = await self._handler(headers.get("accept", ""))
            except Exception:
                _log.exception("rendering %s failed", self._path)
                await self._respond(writer, 500, "text/plain", b"rendering failed\n", keep_alive, False)
                return keep_alive
            gz = "gzip" in headers.get("accept-encoding", "") and len(body) >= _GZIP_MIN_BYTES
            if gz:
                # Large scrapes compress in a thread so the loop keeps receiving data meanwhile.
                body = await asyncio.to_thread(gzip.compress, body, 1)
            await self._respond(writer, 200, content_type, body, keep_alive, method == "HEAD", gz)
        return keep_alive

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        body: bytes,
        keep_alive: bool,
        head_only: bool,
        gz: bool = False,
    ) -> None:
        header = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{'Content-Encoding: gzip' + chr(13) + chr(10) if gz else ''}"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(header.encode("latin-1"))
        if not head_only:
            writer.write(body)
        await writer.drain()

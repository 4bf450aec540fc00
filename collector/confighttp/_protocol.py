"""uvicorn's h11 protocol with the two limits uvicorn lacks, a header-read deadline and a connection cap, and with
TCP_NODELAY on.

uvicorn arms its keep-alive timer only after a response, so a client that connects and trickles a header byte
at a time holds its connection for ever; and ``limit_concurrency`` answers 503 only once a request's headers
have arrived, which such a client never completes. Both are checked here, per connection, at the transport.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from collector.confighttp.limits import ServerLimits

__all__ = ["limited_protocol"]

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 21\r\n\r\ntoo many connections\n"
)


class _LimitedH11(H11Protocol):
    limits: ServerLimits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio leaves Nagle on for connections accepted from a socket handed to it (``sock=``), and h11
            # writes a response's head and body separately: without this every small response waited ~40 ms for
            # the client's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(_REFUSED)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            if self._header_deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        """No request is in progress: the bytes received so far are (part of) the next header block."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.limits.read_header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expired(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


def limited_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """An h11 protocol class enforcing ``limits`` (uvicorn's ``http=`` takes a class)."""
    return type("LimitedH11Protocol", (_LimitedH11,), {"limits": limits})

"""uvicorn's h11 protocol with the two limits uvicorn lacks, a header-read deadline and a connection cap, and with
TCP_NODELAY on.

uvicorn arms its keep-alive timer only after a response, so a client that connects and trickles a header byte
at a time holds its connection for ever; and ``limit_concurrency`` answers 503 only once a request's headers
have arrived, which such a client never completes. Both are checked here, per connection, at the transport.

At the cap, a new connection takes the place of the one that has waited longest for a request's headers (a
client trickling them, or an idle keep-alive connection), as Apache's event MPM closes idle keep-alive
connections when it runs out of room: otherwise clients holding the cap with half-sent headers kept the port
refusing everyone for up to ``read_header_timeout``. Only when every connection has a request in progress is the
new one refused.
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
        # Since when this connection has had no request in progress (loop time); None while it has one.
        self._idle_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio leaves Nagle on for connections accepted from a socket handed to it (``sock=``), and h11
            # writes a response's head and body separately: without this every small response waited ~40 ms for
            # the client's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        if self._over_the_cap() and not self._close_longest_idle():
            transport.write(_REFUSED)
            transport.close()
            return
        self._idle_since = self.loop.time()
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            if self._header_deadline is None:
                self._arm()
        else:
            self._disarm()
            self._idle_since = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._awaiting_headers():
            self._idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _over_the_cap(self) -> bool:
        """More connections open than the cap allows, not counting those already closing (one that made room). The
        set's size is checked first, so that below the cap no connection is looked at."""
        cap = self.limits.max_connections
        return len(self.connections) > cap and sum(not c.transport.is_closing() for c in self.connections) > cap

    def _close_longest_idle(self) -> bool:
        """Close the other connection without a request in progress that has waited longest; False if none."""
        idle = [c for c in self.connections if isinstance(c, _LimitedH11) and c._idle_since is not None]
        idle = [c for c in idle if not c.transport.is_closing()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since or 0.0)
        oldest._disarm()
        oldest.transport.close()
        return True

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

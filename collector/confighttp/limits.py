"""What every HTTP listener bounds, and the defaults (upstream confighttp's key names where it has them).

A listener refuses what is over a limit rather than buffering it: a header block over ``max_request_header_size``
is answered 400, a body over ``max_request_body_size`` 413 (a declared one before a byte of it is read), a
connection that has not sent a whole header block within ``read_header_timeout`` is closed, a keep-alive
connection idle for ``idle_timeout`` is closed, and a connection beyond ``max_connections`` replaces the one that
has waited longest without a request in progress, or is answered 503 and closed at once if every connection has a
request in progress.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADMIN_LIMITS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_MAX_REQUEST_HEADER_SIZE",
    "DEFAULT_READ_HEADER_TIMEOUT",
    "ServerLimits",
]

DEFAULT_MAX_REQUEST_BODY_SIZE = 20 * 1024 * 1024  # confighttp's default
DEFAULT_MAX_REQUEST_HEADER_SIZE = 64 * 1024
# Shorter than Go's confighttp minute: a client that cannot send its headers in 10 s is broken or hostile, and
# each such connection holds a socket.
DEFAULT_READ_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 60.0  # confighttp's default
# Below the usual 1024 open-file limit, so a flood of connections to one listener cannot starve the others.
DEFAULT_MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class ServerLimits:
    # 0: no body at all; None: the app bounds bodies itself (the OTLP receiver, which answers in OTLP's encoding)
    max_request_body_size: int | None = DEFAULT_MAX_REQUEST_BODY_SIZE
    max_request_header_size: int = DEFAULT_MAX_REQUEST_HEADER_SIZE
    read_header_timeout: float = DEFAULT_READ_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


# The health, scrape and analytics listeners: GETs with small headers, no bodies, a handful of clients.
ADMIN_LIMITS = ServerLimits(max_request_body_size=0, max_request_header_size=16 * 1024, max_connections=64)

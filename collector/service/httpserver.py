"""A uvicorn server running inside the collector's own asyncio loop (receivers and extensions share it).

The socket is bound here, before uvicorn starts, so port 0 works (tests) and the bound port is known at once.
uvicorn's own signal capture is disabled: the collector's service owns SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

__all__ = ["HTTPServer", "split_endpoint"]

_log = logging.getLogger("otel_metrics.collector")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:4318`` for IPv6) -> (host, port); ValueError names what is wrong."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint {endpoint!r} must be host:port")
    host = host.strip("[]") or "0.0.0.0"
    value = int(port)
    if not 0 <= value <= 65535:
        raise ValueError(f"endpoint {endpoint!r}: port must be 0..65535")
    return host, value


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HTTPServer:
    def __init__(
        self,
        app: Any,
        endpoint: str,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        name: str = "http",
    ) -> None:
        self._app = app
        self._endpoint = endpoint
        self._cert_file = cert_file
        self._key_file = key_file
        self._name = name
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int = 0

    async def start(self) -> None:
        host, port = split_endpoint(self._endpoint)
        # "localhost" means the IPv4 loopback, as Go's listener (the upstream Collector) reads it, whatever the
        # resolver's order; an IPv6 literal gets an IPv6 socket ("::" also accepts IPv4).
        if host == "localhost":
            host = "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server(
                (host, port), family=family, dualstack_ipv6=(host == "::" and socket.has_dualstack_ipv6())
            )
        except OSError as exc:
            raise OSError(f"cannot listen on {self._endpoint}: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=self._cert_file,
            ssl_keyfile=self._key_file,
            timeout_graceful_shutdown=None,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"{self._name}-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the reason it could not start
                raise RuntimeError(f"{self._name} server on {self._endpoint} exited during start")
            await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (uvicorn waits for them), close the socket."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        except Exception:  # shutdown is best effort; the reason is logged
            _log.exception("%s server on %s did not stop cleanly", self._name, self._endpoint)
        self._server = None
        self._task = None

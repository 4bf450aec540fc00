"""The one HTTP server of the collector: uvicorn on a thread and event loop of its own, per listener.

Why a thread per listener: the collector's pipeline runs on the service's event loop, and decoding or
processing one large request there takes seconds of CPU. Listeners that shared that loop (health_check, the
scrape endpoints, the analytics API) stopped answering for as long. Here each listener's sockets, parsing,
body reading, decompression and decoding run on its own loop, in its own thread; an app that must touch the
pipeline hands just that step to the service's loop (``run_on``). Python's GIL is switched between threads every
few milliseconds, so a listener keeps answering while another thread works; C calls that hold the GIL (a protobuf
parse) bound the delay by their own length.

The socket is bound here, before uvicorn starts, so port 0 works (tests) and the bound port is known at once.
uvicorn's own signal capture is disabled: the collector's service owns SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

import uvicorn

from collector.confighttp._protocol import limited_protocol
from collector.confighttp.body import RequestLimits
from collector.confighttp.limits import ServerLimits

__all__ = ["HTTPServer", "run_on", "split_endpoint"]

_log = logging.getLogger("otel_metrics.collector")
T = TypeVar("T")


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


async def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's) and wait for its result here."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def _bind(endpoint: str) -> socket.socket:
    host, port = split_endpoint(endpoint)
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
        raise OSError(f"cannot listen on {endpoint}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HTTPServer:
    """Serves the ASGI ``app`` on ``endpoint`` within ``limits`` (see ``collector.confighttp.limits``)."""

    def __init__(
        self,
        app: Any,
        endpoint: str,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: ServerLimits | None = None,
        name: str = "http",
    ) -> None:
        self.limits = limits or ServerLimits()
        self._app = RequestLimits(app, self.limits.max_request_header_size, self.limits.max_request_body_size)
        self._endpoint = endpoint
        self._cert_file = cert_file
        self._key_file = key_file
        self._ssl_context = ssl_context
        self._name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.port: int = 0

    def _config(self) -> uvicorn.Config:
        limits = self.limits
        config = uvicorn.Config(
            self._app,
            http=limited_protocol(limits),
            h11_max_incomplete_event_size=limits.max_request_header_size,
            # uvicorn annotates this int, but hands it to loop.call_later, which takes any number of seconds
            timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            ssl_certfile=self._cert_file,
            ssl_keyfile=self._key_file,
            timeout_graceful_shutdown=None,
        )
        config.load()
        if self._ssl_context is not None:
            config.ssl = self._ssl_context
        return config

    def _run(self, server: _Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start(), or logged if it happens later
            self._failure = exc
            if server.started:
                _log.error("%s server on %s failed: %r", self._name, self._endpoint, exc)
        finally:
            sock.close()

    async def start(self) -> None:
        sock = _bind(self._endpoint)
        self.port = sock.getsockname()[1]
        try:
            server = _Server(self._config())
        except BaseException:
            sock.close()
            raise
        self._server = server
        self._thread = threading.Thread(target=self._run, args=(server, sock), name=f"{self._name}-server", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                failure, self._server, self._thread = self._failure, None, None
                raise RuntimeError(f"{self._name} server on {self._endpoint} exited during start") from failure
            await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (uvicorn waits for them), close the socket."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True  # uvicorn's loop looks at it every 0.1 s
        await asyncio.to_thread(self._thread.join)
        self._server = None
        self._thread = None

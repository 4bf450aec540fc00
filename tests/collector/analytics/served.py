"""An ASGI app on a real uvicorn server (port 0) in a background event loop, for the API tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from collector.analytics.api import AnalyticsAPI
from collector.confighttp import HTTPServer


@contextmanager
def running(app: Any) -> Iterator[int]:
    """``app`` served on 127.0.0.1 from a thread of its own; yields the port."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            server = HTTPServer(app, "127.0.0.1:0", name="test-api")
            await server.start()
            state["port"] = server.port
            state["stop"] = asyncio.Event()
            state["loop"] = asyncio.get_running_loop()
            ready.set()
            await state["stop"].wait()
            await server.shutdown()

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test below
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(20), "server did not start"
    assert "error" not in state, state.get("error")
    try:
        yield state["port"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(20)


@contextmanager
def serve(api: AnalyticsAPI) -> Iterator[httpx.Client]:
    """The API on a real server; yields a client bound to its /api/v1."""
    try:
        with running(api.app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as client:
            yield client
    finally:
        api.pool.close()

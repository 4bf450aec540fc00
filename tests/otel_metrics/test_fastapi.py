"""otel_metrics.fastapi: correlation header in and out on every response, header-mapped business metadata,
and propagation of the id across two real HTTP services (uvicorn on ephemeral ports, httpx instrumented)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import propagate

pytest.importorskip("fastapi")

import fastapi

import otel_metrics
from otel_metrics import business_context, get_correlation_id, track_performance
from otel_metrics.fastapi import instrument_app

UUID4 = re.compile(r"^[0-9a-f-]{36}$")


def make_app(name: str) -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, Any]:
        from processors.business import get_business_attributes

        return {"cid": get_correlation_id(), "business": get_business_attributes()}

    @app.get("/missing")
    async def missing() -> None:
        raise fastapi.HTTPException(status_code=404, detail="nope")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")

    instrument_app(app, header_attributes={"x-tenant-id": "tenant.id"})
    return app


async def call(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers or {})


def test_valid_id_is_used_echoed_and_on_the_server_span(telemetry: Any, receiver: Any) -> None:
    app = make_app("a")
    r = asyncio.run(call(app, "/ok", {"X-Correlation-ID": "req-abc", "X-Tenant-ID": "acme"}))
    assert r.status_code == 200
    assert r.headers["x-correlation-id"] == "req-abc"
    assert r.json() == {"cid": "req-abc", "business": {"tenant.id": "acme"}}
    telemetry.force_flush()
    server = receiver.store.span_named("GET /ok")
    assert server.attributes["correlation.id"] == "req-abc"
    assert server.attributes["tenant.id"] == "acme"


def test_request_id_and_baggage_are_accepted(telemetry: Any) -> None:
    app = make_app("a")
    r = asyncio.run(call(app, "/ok", {"X-Request-ID": "rid-1"}))
    assert r.headers["x-correlation-id"] == "rid-1" and r.json()["cid"] == "rid-1"
    r = asyncio.run(call(app, "/ok", {"baggage": "other=1,correlation.id=from-bag"}))
    assert r.headers["x-correlation-id"] == "from-bag" and r.json()["cid"] == "from-bag"


def test_missing_or_invalid_id_is_generated(telemetry: Any, caplog: Any) -> None:
    app = make_app("a")
    r = asyncio.run(call(app, "/ok"))
    assert UUID4.match(r.headers["x-correlation-id"]) and r.json()["cid"] == r.headers["x-correlation-id"]
    r = asyncio.run(call(app, "/ok", {"X-Correlation-ID": "bad id;drop table"}))
    assert UUID4.match(r.headers["x-correlation-id"])
    assert "invalid correlation id" in caplog.text


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/boom", 500), ("/no-route", 404)])
def test_header_echoed_on_errors_and_unhandled_exceptions(telemetry: Any, path: str, status: int) -> None:
    app = make_app("a")
    r = asyncio.run(call(app, path, {"X-Correlation-ID": "err-1"}))
    assert r.status_code == status
    assert r.headers["x-correlation-id"] == "err-1"


def test_instrument_app_is_idempotent_and_never_raises() -> None:
    app = make_app("a")
    assert instrument_app(app) is app
    assert instrument_app(object()) is not None  # not a FastAPI app: logged, returned unchanged


# ----------------------------------------------------------------------------- two real services


class Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(500):
            if self.server.started:
                break
            deadline.wait(0.01)
        assert self.server.started, "uvicorn did not start"
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def httpx_instrumented() -> Iterator[bool]:
    """True with opentelemetry-instrumentation-httpx (client spans, automatic injection); without it the test
    injects the W3C headers itself, so propagation across the two real services is tested either way."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:
        yield False
        return
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument()
    try:
        yield True
    finally:
        instrumentor.uninstrument()


def test_correlation_id_propagates_across_two_services(telemetry: Any, receiver: Any, httpx_instrumented: bool) -> None:
    downstream = fastapi.FastAPI()

    @downstream.get("/inventory")
    async def inventory() -> dict[str, Any]:
        from processors.business import get_business_attributes

        return {"cid": get_correlation_id(), "business": get_business_attributes()}

    instrument_app(downstream)

    with Server(downstream) as down_url:
        upstream = fastapi.FastAPI()

        @track_performance("gateway")
        async def fetch_inventory() -> dict[str, Any]:
            with business_context(propagate=True, user_id="u-9"):
                headers: dict[str, str] = {}
                if not httpx_instrumented:
                    propagate.inject(headers)  # what the httpx instrumentation does for us
                async with httpx.AsyncClient() as client:
                    inventory: dict[str, Any] = (await client.get(f"{down_url}/inventory", headers=headers)).json()
                    return inventory

        @upstream.get("/order")
        async def order() -> dict[str, Any]:
            return await fetch_inventory()

        instrument_app(upstream, header_attributes={"x-tenant-id": "tenant.id"})
        with Server(upstream) as up_url:
            r = httpx.get(f"{up_url}/order", headers={"X-Correlation-ID": "e2e-1", "X-Tenant-ID": "acme"})
    assert r.status_code == 200 and r.headers["x-correlation-id"] == "e2e-1"
    assert r.json() == {"cid": "e2e-1", "business": {"user.id": "u-9", "tenant.id": "acme"}}
    telemetry.force_flush()
    store = receiver.store
    down_server = store.span_named("GET /inventory")
    up_server = store.span_named("GET /order")
    gateway = store.span_named("gateway.fetch_inventory")
    assert down_server.trace_id == up_server.trace_id == gateway.trace_id
    for span in (down_server, up_server, gateway):
        assert span.attributes["correlation.id"] == "e2e-1", span.name
    assert gateway.attributes["tenant.id"] == "acme"
    assert down_server.attributes["user.id"] == "u-9"
    # header-mapped metadata travels in baggage: the downstream service's spans (and costs) have an owner
    assert down_server.attributes["tenant.id"] == "acme"
    if httpx_instrumented:
        client_spans = [s for s in store.spans() if s.kind == 3 and s.parent_span_id == gateway.span_id]  # CLIENT
        assert client_spans and all(s.attributes.get("correlation.id") == "e2e-1" for s in client_spans)
    assert otel_metrics.get_correlation_id() is None  # nothing leaked into the test's own context


# ----------------------------------------------------------------------------- SIGTERM

_SIGTERM_APP = """
import signal
import sys

import uvicorn
from fastapi import FastAPI

import otel_metrics
from otel_metrics.fastapi import instrument_app

otel_metrics.configure("sigterm-app", endpoint=sys.argv[1])
# configure() flushes on SIGTERM too; back to the default disposition, to test instrument_app's flush on its own.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
app = FastAPI()
instrument_app(app)


@app.get("/work")
async def work() -> dict:
    return {"done": True}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[-1]), log_level="warning")
"""


def test_spans_of_the_last_requests_are_exported_when_uvicorn_stops_on_sigterm(
    receiver: Any, sigterm_after_request: Any
) -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown with the default handler back: the process dies
    without running atexit, where the SDK flushes. instrument_app flushes at lifespan shutdown instead."""
    import os
    import signal

    returncode, err = sigterm_after_request(_SIGTERM_APP, [receiver.endpoint], dict(os.environ))
    assert returncode == -signal.SIGTERM, err  # died of the re-raised signal: atexit did not run
    store = receiver.store
    spans = store.wait_for(
        lambda: [s for s in store.spans() if s.resource.get("service.name") == "sigterm-app" and s.name == "GET /work"]
    )
    assert spans, err

"""otlphttp exporter against a real HTTP server (Starlette on uvicorn, 127.0.0.1:0) that records what arrives."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.component import ComponentID, CreateSettings, Signal
from collector.components import registry
from collector.exporters.exporterhelper import QueueConfig, RetryConfig
from collector.exporters.exporterhelper.testing import StaticHost
from collector.exporters.otlphttp import OTLPHTTPExporter, OTLPHTTPExporterConfig, parse_retry_after
from processors.pdata import from_json
from processors.pipeline import Duration
from tests.support.sdk_data import metrics_in, number_points

FAST_RETRY = RetryConfig(initial_interval=Duration(0.01), max_interval=Duration(0.05), max_elapsed_time=Duration(20.0))


def sdk_request(*names: str) -> trace_service_pb2.ExportTraceServiceRequest:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope")
    for name in names:
        with tracer.start_as_current_span(name, attributes={"cost.usd": 0.25, "tokens": 12}):
            pass
    provider.shutdown()
    return encode_spans(memory.get_finished_spans())


class Peer:
    """An OTLP/HTTP server: answers from a script of (status, headers, body), then 200 and records the body."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.calls = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        body = await request.body()
        if self.script:
            status, headers, content = self.script.pop(0)
            return Response(content, status_code=status, headers=headers, media_type="application/x-protobuf")
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((request.url.path, dict(request.headers), body))
        return Response(b"", media_type="application/x-protobuf")

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task


def exporter(port: int, reader: InMemoryMetricReader | None = None, **kw: Any) -> OTLPHTTPExporter:
    settings = CreateSettings(ComponentID("otlphttp"), Signal.TRACES)
    if reader is not None:
        settings.meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    kw.setdefault("endpoint", f"http://127.0.0.1:{port}")
    config = OTLPHTTPExporterConfig(retry_on_failure=FAST_RETRY, **kw)
    assert config.validate() == []
    return OTLPHTTPExporter(settings, config)


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def counter(reader: InMemoryMetricReader, name: str) -> float:
    return sum(dp.value for m in metrics_in(reader.get_metrics_data(), name) for dp in number_points(m))


def run_with_peer(body: Callable[[Peer], Any], script: list[tuple[int, dict[str, str], bytes]] | None = None) -> Peer:
    async def run() -> Peer:
        peer = Peer()
        peer.script = list(script or [])
        await peer.start()
        try:
            await body(peer)
        finally:
            await peer.stop()
        return peer

    return asyncio.run(run())


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_protobuf_bytes_forwarded_identically(compression: str) -> None:
    request = sdk_request("a", "b")

    async def body(peer: Peer) -> None:
        exp = exporter(peer.port, headers={"Authorization": "Bearer t0k"}, compression=compression)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, request)
        await wait_until(lambda: len(peer.received) == 1)
        await exp.shutdown()

    peer = run_with_peer(body)
    path, headers, data = peer.received[0]
    assert path == "/v1/traces"
    assert data == request.SerializeToString()
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Bearer t0k"
    assert headers.get("content-encoding") == ("gzip" if compression == "gzip" else None)


def test_json_encoding_uses_otlp_json_and_round_trips() -> None:
    request = sdk_request("json-span")

    async def body(peer: Peer) -> None:
        exp = exporter(peer.port, encoding="json", traces_endpoint=f"http://127.0.0.1:{peer.port}/custom/traces")
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, request)
        await wait_until(lambda: len(peer.received) == 1)
        await exp.shutdown()

    peer = run_with_peer(body)
    path, headers, data = peer.received[0]
    assert path == "/custom/traces"
    assert headers["content-type"] == "application/json"
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert f'"traceId":"{span.trace_id.hex()}"' in data.decode()
    decoded = from_json(data, trace_service_pb2.ExportTraceServiceRequest())
    assert decoded == request


def test_503_with_retry_after_then_ok() -> None:
    reader = InMemoryMetricReader()

    async def body(peer: Peer) -> None:
        exp = exporter(peer.port, reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("a"))
        await wait_until(lambda: len(peer.received) == 1)
        await wait_until(exp.healthy)
        await exp.shutdown()

    peer = run_with_peer(body, [(503, {"Retry-After": "0"}, b""), (429, {}, b""), (502, {}, b"")])
    assert peer.calls == 4
    assert counter(reader, "otelcol_exporter_sent_spans") == 1


def test_400_is_dropped_counted_with_the_servers_message(caplog: pytest.LogCaptureFixture) -> None:
    from google.rpc import status_pb2

    reader = InMemoryMetricReader()
    status = status_pb2.Status(code=3, message="span.trace_id: must be 16 bytes").SerializeToString()

    async def body(peer: Peer) -> None:
        exp = exporter(peer.port, reader, sending_queue=QueueConfig(num_consumers=1))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("bad", "bad2"))
        await exp.consume(Signal.TRACES, sdk_request("good"))
        await wait_until(lambda: len(peer.received) == 1)
        await exp.shutdown()

    peer = run_with_peer(body, [(400, {}, status)])
    assert peer.calls == 2
    assert counter(reader, "otelcol_exporter_send_failed_spans") == 2
    assert "HTTP 400 span.trace_id: must be 16 bytes" in caplog.text


def test_peer_down_is_retried_until_it_answers() -> None:
    async def run() -> Peer:
        probe = Peer()
        await probe.start()
        port = probe.port
        await probe.stop()
        exp = exporter(port)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("late"))
        await wait_until(lambda: not exp.healthy())
        assert exp.last_error is not None and "ConnectError" in exp.last_error
        await exp.shutdown()
        return probe

    asyncio.run(run())


def test_partial_success_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    response = trace_service_pb2.ExportTraceServiceResponse(
        partial_success=trace_service_pb2.ExportTracePartialSuccess(rejected_spans=2, error_message="dup")
    ).SerializeToString()

    async def body(peer: Peer) -> None:
        exp = exporter(peer.port)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("a", "b"))
        await wait_until(lambda: exp.rejected_items == 2)
        await exp.shutdown()

    run_with_peer(body, [(200, {}, response)])
    assert "partial success: 2 spans rejected: dup" in caplog.text


def test_retry_after_parsing_and_registration() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    exporters = registry().exporters
    assert exporters["otlphttp"].config_type is OTLPHTTPExporterConfig
    assert exporters["otlp_http"].create is exporters["otlphttp"].create
    errors = OTLPHTTPExporterConfig(endpoint="tempo:4318").validate()
    assert errors == ["endpoint: expected an http:// or https:// URL, got 'tempo:4318'"]

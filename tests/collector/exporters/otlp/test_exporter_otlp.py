"""otlp exporter against a real grpc.aio OTLP server that records what arrives.

Input requests are what the official SDK exporter would send: SDK spans encoded by opentelemetry-exporter-otlp's
``encode_spans``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.component import ComponentID, CreateSettings, Signal
from collector.components import registry
from collector.exporters.exporterhelper import QueueConfig, RetryConfig
from collector.exporters.exporterhelper.testing import StaticHost, span_names
from collector.exporters.otlp import OTLPExporter, OTLPExporterConfig
from processors.pipeline import Duration
from tests.support.sdk_data import metrics_in, number_points

FAST_RETRY = RetryConfig(initial_interval=Duration(0.01), max_interval=Duration(0.05), max_elapsed_time=Duration(20.0))


def sdk_request(*names: str) -> trace_service_pb2.ExportTraceServiceRequest:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope", "1.2.3")
    for name in names:
        with tracer.start_as_current_span(name, attributes={"gen_ai.request.model": "gpt-4o", "n": 7}) as span:
            span.add_event("evt", {"k": "v"})
    provider.shutdown()
    return encode_spans(memory.get_finished_spans())


class Peer(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP gRPC trace server: answers according to a script, then records."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.metadata: list[dict[str, str]] = []
        self.script: list[Callable[[Any], Any]] = []
        self.calls = 0
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def Export(self, request: Any, context: Any) -> Any:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if self.script:
            action = self.script.pop(0)
            return await action(context)
        self.received.append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self, port: int = 0) -> None:
        self.server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)


def abort(code: grpc.StatusCode, message: str, retry_delay: float | None = None) -> Callable[[Any], Any]:
    async def action(context: Any) -> Any:
        if retry_delay is not None:
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=int(retry_delay * 1e9)))
            status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
            status.details.add().Pack(info)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        await context.abort(code, message)

    return action


def exporter(port: int, reader: InMemoryMetricReader | None = None, **kw: Any) -> OTLPExporter:
    settings = CreateSettings(ComponentID("otlp", "tempo"), Signal.TRACES)
    if reader is not None:
        settings.meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    config = OTLPExporterConfig(endpoint=f"127.0.0.1:{port}", retry_on_failure=FAST_RETRY, **kw)
    config.tls.insecure = True
    assert config.validate() == []
    return OTLPExporter(settings, config)


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def counter(reader: InMemoryMetricReader, name: str) -> float:
    return sum(dp.value for m in metrics_in(reader.get_metrics_data(), name) for dp in number_points(m))


def test_forwarded_bytes_are_identical_and_headers_sent() -> None:
    requests = [sdk_request("a", "b"), sdk_request("c")]

    async def run(compression: str) -> Peer:
        peer = Peer()
        await peer.start()
        exp = exporter(peer.port, headers={"X-Tenant": "acme"}, compression=compression)
        await exp.start(StaticHost())
        for r in requests:
            await exp.consume(Signal.TRACES, r)
        await wait_until(lambda: len(peer.received) == 2)
        await exp.shutdown()
        await peer.stop()
        return peer

    for compression in ("gzip", "none"):
        peer = asyncio.run(run(compression))
        assert sorted(peer.received) == sorted(r.SerializeToString() for r in requests)
        assert peer.metadata[0]["x-tenant"] == "acme"
        got = trace_service_pb2.ExportTraceServiceRequest.FromString(peer.received[0])
        span = got.resource_spans[0].scope_spans[0].spans[0]
        assert len(span.trace_id) == 16 and len(span.span_id) == 8
        assert {kv.key for kv in span.attributes} == {"gen_ai.request.model", "n"}


def test_unavailable_then_ok_is_retried_and_health_recovers() -> None:
    reader = InMemoryMetricReader()

    async def run() -> tuple[Peer, OTLPExporter]:
        peer = Peer()
        peer.script = [abort(grpc.StatusCode.UNAVAILABLE, "warming up")] * 3
        await peer.start()
        exp = exporter(peer.port, reader)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("a"))
        await wait_until(lambda: peer.calls >= 1)
        await wait_until(lambda: len(peer.received) == 1)
        await wait_until(exp.healthy)  # the response is processed just after the peer recorded the request
        await exp.shutdown()
        await peer.stop()
        return peer, exp

    peer, _ = asyncio.run(run())
    assert peer.calls == 4
    assert counter(reader, "otelcol_exporter_sent_spans") == 1


def test_resource_exhausted_is_retried_only_with_retry_info() -> None:
    reader = InMemoryMetricReader()

    async def run() -> Peer:
        peer = Peer()
        peer.script = [
            abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_delay=0.05),
            abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota gone"),  # no RetryInfo: permanent
        ]
        await peer.start()
        exp = exporter(peer.port, reader, sending_queue=QueueConfig(num_consumers=1))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("retried"))
        await wait_until(lambda: peer.calls == 2)
        await exp.consume(Signal.TRACES, sdk_request("x"))
        await wait_until(lambda: len(peer.received) == 1)
        await exp.shutdown()
        await peer.stop()
        return peer

    peer = asyncio.run(run())
    # The first request was retried after RetryInfo and dropped on the bare RESOURCE_EXHAUSTED.
    assert counter(reader, "otelcol_exporter_send_failed_spans") == 1
    got = trace_service_pb2.ExportTraceServiceRequest.FromString(peer.received[0])
    assert span_names(got) == ["x"]


def test_invalid_argument_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()

    async def run() -> Peer:
        peer = Peer()
        peer.script = [abort(grpc.StatusCode.INVALID_ARGUMENT, "trace_id must be 16 bytes")]
        await peer.start()
        exp = exporter(peer.port, reader, sending_queue=QueueConfig(num_consumers=1))
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("bad", "bad2"))
        await exp.consume(Signal.TRACES, sdk_request("good"))
        await wait_until(lambda: len(peer.received) == 1)
        await exp.shutdown()
        await peer.stop()
        return peer

    asyncio.run(run())
    assert counter(reader, "otelcol_exporter_send_failed_spans") == 2
    assert counter(reader, "otelcol_exporter_sent_spans") == 1
    assert "INVALID_ARGUMENT" in caplog.text and "trace_id must be 16 bytes" in caplog.text


def test_peer_down_then_up_is_delivered_after_retry() -> None:
    async def run() -> Peer:
        first = Peer()
        await first.start()
        port = first.port
        await first.stop()  # the port is known and nothing listens on it
        exp = exporter(port)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("late"))
        await wait_until(lambda: not exp.healthy())
        peer = Peer()
        await peer.start(port)
        await wait_until(lambda: len(peer.received) == 1)
        await wait_until(exp.healthy)  # the response is processed just after the peer recorded the request
        await exp.shutdown()
        await peer.stop()
        return peer

    peer = asyncio.run(run())
    assert span_names(trace_service_pb2.ExportTraceServiceRequest.FromString(peer.received[0])) == ["late"]


def test_partial_success_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def partial(context: Any) -> Any:
        return trace_service_pb2.ExportTraceServiceResponse(
            partial_success=trace_service_pb2.ExportTracePartialSuccess(rejected_spans=1, error_message="too old")
        )

    async def run() -> OTLPExporter:
        peer = Peer()
        peer.script = [partial]
        await peer.start()
        exp = exporter(peer.port)
        await exp.start(StaticHost())
        await exp.consume(Signal.TRACES, sdk_request("a", "b"))
        await wait_until(lambda: exp.rejected_items == 1)
        await exp.shutdown()
        await peer.stop()
        return exp

    asyncio.run(run())
    assert "partial success: 1 spans rejected: too old" in caplog.text


def test_both_type_names_are_registered_and_endpoint_required() -> None:
    exporters = registry().exporters
    assert exporters["otlp"].config_type is OTLPExporterConfig
    assert exporters["otlp_grpc"].create is exporters["otlp"].create
    errors = OTLPExporterConfig().validate()
    assert errors and errors[0].startswith("endpoint:")

"""OTLP/gRPC edge cases against a real receiver, with a raw grpc channel as client."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from collector.component import ComponentID, CreateSettings, Signal
from collector.receivers.otlp import OTLPReceiver, OTLPReceiverConfig
from collector.receivers.otlp.config import GRPCConfig, HTTPConfig, ProtocolsConfig
from processors.pipeline import RefusedError, Request
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.sdk_data import attrs_of, metrics_in, number_points

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _request(n: int = 2, name: str = "op") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = ss.spans.add()
        span.name = f"{name}-{i}"
        span.trace_id = b"\x0a" * 16
        span.span_id = bytes([i + 1] * 8)
    return req


def _call(endpoint: str, body: bytes, compression: grpc.Compression | None = None) -> tuple[grpc.StatusCode, Any, Any]:
    with grpc.insecure_channel(endpoint, compression=compression) as channel:
        export = channel.unary_unary(EXPORT)  # raw bytes both ways
        try:
            response = export(body, timeout=10)
            return grpc.StatusCode.OK, response, None
        except grpc.RpcError as error:
            return error.code(), error.details(), error.trailing_metadata()


@pytest.fixture
def collector(run_collector: RunCollector, make_config: MakeConfig) -> Any:
    receiver = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": 1}}}
    return run_collector(make_config(receiver=receiver))


def test_garbage_truncated_and_oversized(collector: Any) -> None:
    code, details, _ = _call(collector.grpc_endpoint, b"\xff\xff\xff\xff not protobuf")
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "malformed protobuf" in details
    code, details, _ = _call(collector.grpc_endpoint, _request(3).SerializeToString()[:-4])
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _, _ = _call(collector.grpc_endpoint, b"\x00" * (1024 * 1024 + 10))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # a gzip bomb: a few KiB on the wire, 8 MiB once inflated, checked against the limit after decompression
    code, _, _ = _call(collector.grpc_endpoint, b"\x00" * (8 << 20), grpc.Compression.Gzip)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # still serving
    code, response, _ = _call(collector.grpc_endpoint, _request(2).SerializeToString())
    assert code is grpc.StatusCode.OK
    assert not ExportTraceServiceResponse.FromString(response).HasField("partial_success")
    assert collector.exporter().wait_items(2) == [_request(2)]


def test_invalid_ids_are_partial_success_over_grpc(collector: Any) -> None:
    request = _request(2)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    code, response, _ = _call(collector.grpc_endpoint, request.SerializeToString())
    assert code is grpc.StatusCode.OK
    assert ExportTraceServiceResponse.FromString(response).partial_success.rejected_spans == 1
    # all invalid: the whole request is rejected
    request = _request(1)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01"
    code, details, _ = _call(collector.grpc_endpoint, request.SerializeToString())
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "trace_id" in details


def test_refusal_is_unavailable_with_retry_info(run_collector: RunCollector, make_config: MakeConfig) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": "refuse", "retry_after": 1.5}}))
    code, details, trailers = _call(collector.grpc_endpoint, _request().SerializeToString())
    assert code is grpc.StatusCode.UNAVAILABLE and "refuses" in details
    metadata = dict(trailers)
    info = error_details_pb2.RetryInfo.FromString(metadata["google.rpc.retryinfo-bin"])
    assert info.retry_delay.ToNanoseconds() == 1_500_000_000
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Is(info.DESCRIPTOR)


def test_data_error_is_invalid_argument(run_collector: RunCollector, make_config: MakeConfig) -> None:
    collector = run_collector(make_config(exporters={"collect": {"mode": "data"}}))
    code, details, _ = _call(collector.grpc_endpoint, _request().SerializeToString())
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "rejects the data" in details


class _Consumer:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.got: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        if self.refuse:
            raise RefusedError("full")
        self.got.append(request)


def test_accepted_and_refused_counted_with_collector_metric_names() -> None:
    asyncio.run(_count_accepted_and_refused())


async def _count_accepted_and_refused() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otelcol")
    consumer = _Consumer(refuse=False)
    config = OTLPReceiverConfig(
        protocols=ProtocolsConfig(grpc=GRPCConfig(endpoint="127.0.0.1:0"), http=HTTPConfig(endpoint="127.0.0.1:0"))
    )
    receiver = OTLPReceiver(
        CreateSettings(ComponentID("otlp", "front"), Signal.TRACES, meter=meter),
        config,
        {Signal.TRACES: consumer},
    )
    await receiver.start(host=None)  # type: ignore[arg-type]  # no authenticator configured: host unused
    try:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{receiver.grpc_port}")
        export = channel.unary_unary(EXPORT)
        await export(_request(3).SerializeToString())
        consumer.refuse = True
        with pytest.raises(grpc.aio.AioRpcError):
            await export(_request(2).SerializeToString())
        await channel.close()
    finally:
        await receiver.shutdown()
    points = {
        (m.name, attrs_of(dp)["transport"], attrs_of(dp)["receiver"]): dp.value
        for m in metrics_in(reader.get_metrics_data())
        for dp in number_points(m)
    }
    assert points[("otelcol_receiver_accepted_spans", "grpc", "otlp/front")] == 3
    assert points[("otelcol_receiver_refused_spans", "grpc", "otlp/front")] == 2
    assert len(consumer.got) == 1

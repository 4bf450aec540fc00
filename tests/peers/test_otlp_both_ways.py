"""Both directions of OTLP with the real upstream Collector, compared span by span.

Each case is a chain  SDK client -> first collector -> second collector -> a recording TraceService, where one
collector is upstream's and the other ours, joined by the first one's ``otlp`` (gRPC) or ``otlphttp`` exporter with
a given compression. What the recorder receives must be, span for span, the protobuf the SDK sent: same ids,
names, times, kinds, status, attributes of every type, events, links, resource and scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.peers.peer_procs import free_port, start_our_collector, upstream_collector, wait_for
from tests.support.sink_otlp import make_spans
from tests.support.trace_recorder import TraceRecorder

pytestmark = pytest.mark.slow
QUIET = {"metrics": {"level": "none"}, "logs": {"level": "warn"}}


def _spans() -> list[ReadableSpan]:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("POST /v1/query", kind=SpanKind.SERVER) as root:
            root.set_attributes(
                {
                    "tenant.id": "acme",
                    "http.response.status_code": 200,
                    "gen_ai.usage.cost": 0.00125,
                    "cache.hit": False,
                    "tags": ["a", "b"],
                    "sizes": [1, 2, 3],
                    "ratios": [0.5, 1.5],
                    "flags": [True, False],
                }
            )
            root.add_event("retry", {"attempt": 2, "reason": "timeout"})
            for i in range(20):
                link = Link(root.get_span_context(), {"link.kind": "follows"}) if i % 5 == 0 else None
                with tracer.start_as_current_span(
                    f"llm.chat {i}", kind=SpanKind.CLIENT, links=[link] if link else None
                ) as child:
                    child.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                    child.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                    if i % 7 == 3:
                        child.set_status(Status(StatusCode.ERROR, "upstream 503"))

    return make_spans(build, service="both-ways", **{"deployment.environment.name": "test", "host.cpu": 2})


def _flatten(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> dict[bytes, tuple[bytes, bytes, bytes]]:
    """span id -> (serialized resource, serialized scope, serialized span), deterministic bytes."""
    out = {}
    for request in requests:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.span_id] = (
                        rs.resource.SerializeToString(deterministic=True),
                        ss.scope.SerializeToString(deterministic=True),
                        span.SerializeToString(deterministic=True),
                    )
    return out


def _exporter(kind: str, compression: str, grpc_port: int, http_port: int) -> dict[str, Any]:
    config: dict[str, Any] = (
        {"endpoint": f"127.0.0.1:{grpc_port}", "tls": {"insecure": True}}
        if kind == "otlp"
        else {"endpoint": f"http://127.0.0.1:{http_port}"}
    )
    if compression != "default":
        config["compression"] = compression
    return config


def _config(receiver_grpc: int, receiver_http: int, exporters: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{receiver_grpc}"},
                    "http": {"endpoint": f"127.0.0.1:{receiver_http}"},
                }
            }
        },
        "exporters": exporters,
        "service": {
            "telemetry": QUIET,
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": list(exporters)}},
        },
    }


def _send_and_compare(first_grpc: int, recorder: TraceRecorder, log: Any) -> None:
    spans = _spans()
    client = OTLPSpanExporter(endpoint=f"127.0.0.1:{first_grpc}", insecure=True, timeout=10)
    assert client.export(spans) is SpanExportResult.SUCCESS
    client.shutdown()
    expected = _flatten([encode_spans(spans)])

    def arrived() -> bool:
        return len(_flatten(recorder.requests())) >= len(expected)

    wait_for(arrived, f"{len(expected)} spans at the end of the chain\n{log()}", 60)
    received = _flatten(recorder.requests())
    assert received.keys() == expected.keys()
    for span_id, (resource, scope, span) in expected.items():
        assert received[span_id] == (resource, scope, span), span_id.hex()


# The upstream exporters' defaults (gzip on both), none, and zstd and snappy over HTTP. Over gRPC our receiver
# (grpcio) decodes gzip and deflate only, so upstream's otlp exporter with zstd or snappy is not in this list.
UPSTREAM_INTO_OURS = [
    ("otlp", "default"),
    ("otlp", "none"),
    ("otlphttp", "default"),
    ("otlphttp", "none"),
    ("otlphttp", "zstd"),
    ("otlphttp", "snappy"),
]


@pytest.mark.parametrize(("kind", "compression"), UPSTREAM_INTO_OURS)
def test_upstream_exporter_into_our_receiver(
    otelcol: Path, workdir: Path, trace_recorder: tuple[TraceRecorder, int], kind: str, compression: str
) -> None:
    servicer, recorder_port = trace_recorder
    ours_grpc, ours_http = free_port(), free_port()
    ours = _config(ours_grpc, ours_http, {"otlp/recorder": _exporter("otlp", "none", recorder_port, 0)})
    proc, _ = start_our_collector(ours, workdir, "ours")
    try:
        up_grpc = free_port()
        upstream = _config(up_grpc, free_port(), {f"{kind}/ours": _exporter(kind, compression, ours_grpc, ours_http)})
        with upstream_collector(otelcol, workdir, upstream, ready_port=up_grpc) as up:
            _send_and_compare(up_grpc, servicer, lambda: up.log_tail() + proc.log_tail())
    finally:
        proc.stop()


# Our otlp exporter's `deflate` is left out: upstream's gRPC server has no deflate decompressor (UNIMPLEMENTED).
OURS_INTO_UPSTREAM = [
    ("otlp", "default"),
    ("otlp", "none"),
    ("otlphttp", "default"),
    ("otlphttp", "none"),
]


@pytest.mark.parametrize(("kind", "compression"), OURS_INTO_UPSTREAM)
def test_our_exporter_into_upstream_receiver(
    otelcol: Path, workdir: Path, trace_recorder: tuple[TraceRecorder, int], kind: str, compression: str
) -> None:
    servicer, recorder_port = trace_recorder
    up_grpc, up_http = free_port(), free_port()
    upstream = _config(up_grpc, up_http, {"otlp/recorder": _exporter("otlp", "none", recorder_port, 0)})
    with upstream_collector(otelcol, workdir, upstream, ready_port=up_grpc) as up:
        ours_grpc = free_port()
        ours = _config(ours_grpc, free_port(), {f"{kind}/upstream": _exporter(kind, compression, up_grpc, up_http)})
        proc, _ = start_our_collector(ours, workdir, "ours")
        try:
            _send_and_compare(ours_grpc, servicer, lambda: up.log_tail() + proc.log_tail())
        finally:
            proc.stop()

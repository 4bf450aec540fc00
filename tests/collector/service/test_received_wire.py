"""A request reaches the exporters as the bytes it was received as, unless a processor may have changed it: a
persistent queue then stores those bytes instead of serializing the message again (``processors.pipeline``)."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.components import Registry
from collector.exporters.exporterhelper.testing import span_names, trace_request
from processors import memory_limiter
from tests.collector.conftest import MakeConfig, RunCollector

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# An unknown field (number 1000, varint 1) in front: protobuf keeps it but writes it after the known fields, so the
# bytes sent differ from any re-serialization of the parsed message.
_UNKNOWN_FIRST = b"\xc0\x3e\x01"


def _send(endpoint: str, data: bytes) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        channel.unary_unary(_EXPORT)(data, timeout=10)


@pytest.fixture
def components(test_components: Registry) -> Registry:
    return Registry(
        receivers=test_components.receivers,
        processors={**test_components.processors, **{f.type: f for f in memory_limiter.factories}},
        exporters=test_components.exporters,
        connectors=test_components.connectors,
        extensions=test_components.extensions,
    )


@pytest.mark.parametrize(
    ("processors", "as_sent"),
    [([], True), (["memory_limiter"], True), (["tag"], False), (["memory_limiter", "tag"], False)],
)
def test_exporters_see_the_received_bytes_only_while_nothing_can_have_changed_them(
    run_collector: RunCollector, make_config: MakeConfig, components: Registry, processors: list[str], as_sent: bool
) -> None:
    collector = run_collector(
        make_config(
            receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            processors={"tag": {"key": "hop", "value": "front"}, "memory_limiter": {"limit_mib": 4096}},
            pipelines={"traces": {"receivers": ["otlp"], "processors": processors, "exporters": ["collect"]}},
        ),
        components,
    )
    sent = _UNKNOWN_FIRST + trace_request("a", "b").SerializeToString()
    _send(collector.grpc_endpoint, sent)
    exporter = collector.exporter()
    (request,) = exporter.wait_items(2)
    (wire,) = exporter.wires
    assert (wire == sent) is as_sent
    stored = ExportTraceServiceRequest.FromString(wire)
    assert span_names(stored) == ["a", "b"]
    tagged = [kv.value.string_value for rs in stored.resource_spans for ss in rs.scope_spans for s in ss.spans
              for kv in s.attributes if kv.key == "hop"]  # fmt: skip
    assert tagged == ([] if "tag" not in processors else ["front", "front"])
    assert stored == request  # the bytes always decode to the message the exporter got


def test_each_pipeline_gets_bytes_matching_its_own_copy(run_collector: RunCollector, make_config: MakeConfig) -> None:
    # Two pipelines from one receiver: the first gets a copy (serialized afresh), the last the received message.
    collector = run_collector(
        make_config(
            receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            exporters={"collect/a": None, "collect/b": None},
            processors={"tag": {"key": "hop", "value": "a"}},
            pipelines={
                "traces/a": {"receivers": ["otlp"], "processors": ["tag"], "exporters": ["collect/a"]},
                "traces/b": {"receivers": ["otlp"], "exporters": ["collect/b"]},
            },
        )
    )
    sent = _UNKNOWN_FIRST + trace_request("x").SerializeToString()
    _send(collector.grpc_endpoint, sent)
    for name in ("collect/a", "collect/b"):
        exporter = collector.exporter(name)
        (request,) = exporter.wait_items(1)
        (wire,) = exporter.wires
        assert ExportTraceServiceRequest.FromString(wire) == request, name
    assert collector.exporter("collect/b").wires == [sent]
    assert collector.exporter("collect/a").wires != [sent]


def test_otlp_http_protobuf_bodies_pass_through_too(run_collector: RunCollector, make_config: MakeConfig) -> None:
    import urllib.request

    collector = run_collector(make_config(receiver={"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}))
    sent = _UNKNOWN_FIRST + trace_request("h").SerializeToString()
    post = urllib.request.Request(
        f"{collector.http_url}/v1/traces", data=sent, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200
    exporter = collector.exporter()
    exporter.wait_items(1)
    assert exporter.wires == [sent]

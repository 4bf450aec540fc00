"""A request reaches the exporters as the bytes it was received as, unless a processor may have changed it: a
persistent queue then stores those bytes instead of serializing the message again (``processors.pipeline``)."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.components import Registry
from collector.exporters.exporterhelper.testing import span_names, trace_request
from processors import batch, business, correlation, cost, memory_limiter
from processors._attributes import attributes_to_dict, set_attribute
from processors.pipeline import INLINE_ITEMS
from tests.collector.conftest import MakeConfig, RunCollector, RunningCollector

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
        processors={
            **test_components.processors,
            **{f.type: f for f in memory_limiter.factories},
            **{f.type: f for f in correlation.factories},
            **{f.type: f for f in business.factories},
            **{f.type: f for f in cost.factories},
            **{f.type: f for f in batch.factories},
        },
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


def _enriching(run_collector: RunCollector, make_config: MakeConfig, components: Registry) -> RunningCollector:
    """otlp (gRPC) -> correlation, business, cost -> collect: the processors that report their changes."""
    return run_collector(
        make_config(
            receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            processors={"correlation": {}, "business": {}, "cost": {}},
            pipelines={
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["correlation", "business", "cost"],
                    "exporters": ["collect"],
                }
            },
        ),
        components,
    )


def test_processors_that_report_their_changes_keep_the_received_bytes_of_what_they_leave_alone(
    run_collector: RunCollector, make_config: MakeConfig, components: Registry
) -> None:
    """correlation, business and cost say when they change a request (``processors.pipeline.changing``): a request
    none of them changes reaches the exporters as the bytes received, one they change as its new serialization."""
    collector = _enriching(run_collector, make_config, components)
    plain = trace_request("plain")
    llm = trace_request("llm")
    for key, value in (("gen_ai.request.model", "gpt-4o-mini"), ("gen_ai.usage.input_tokens", 1000)):
        set_attribute(llm.resource_spans[0].scope_spans[0].spans[0].attributes, key, value)
    correlated = trace_request("correlated")
    set_attribute(correlated.resource_spans[0].scope_spans[0].spans[0].attributes, "request.id", "r-1")
    tenant = trace_request("tenant")
    set_attribute(tenant.resource_spans[0].resource.attributes, "tenant.id", "t-1")
    exporter = collector.exporter()
    added = {"plain": set(), "llm": {"cost.usd"}, "correlated": {"correlation.id"}, "tenant": {"tenant.id"}}
    for n, request in enumerate((plain, llm, correlated, tenant), start=1):
        sent = _UNKNOWN_FIRST + request.SerializeToString()
        _send(collector.grpc_endpoint, sent)
        got = exporter.wait_items(n)[-1]
        wire = exporter.wires[-1]
        assert ExportTraceServiceRequest.FromString(wire) == got  # the bytes always decode to the message
        span = got.resource_spans[0].scope_spans[0].spans[0]
        before = set(attributes_to_dict(request.resource_spans[0].scope_spans[0].spans[0].attributes))
        assert set(attributes_to_dict(span.attributes)) - before == added[span.name]
        assert (wire == sent) is (span.name == "plain"), span.name


def test_a_request_the_batch_processor_splits_or_merges_into_reaches_the_exporter_as_its_new_bytes(
    run_collector: RunCollector, make_config: MakeConfig, components: Registry
) -> None:
    collector = run_collector(
        make_config(
            receiver={"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            processors={"batch": {"send_batch_size": 2, "send_batch_max_size": 3, "timeout": "100ms"}},
            pipelines={"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["collect"]}},
        ),
        components,
    )
    groups = (["a", "b", "c", "d", "e"], ["f"], ["g"])
    sent = [_UNKNOWN_FIRST + trace_request(*names).SerializeToString() for names in groups]
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        export = channel.unary_unary(_EXPORT)
        calls = [export.future(data, timeout=10) for data in sent]
        for call in calls:
            call.result()
    exporter = collector.exporter()
    requests = exporter.wait_items(7)
    assert sorted(name for r in requests for name in span_names(r)) == ["a", "b", "c", "d", "e", "f", "g"]
    assert len(requests) >= 2  # split at send_batch_max_size
    for request, wire in zip(requests, exporter.wires, strict=True):
        assert ExportTraceServiceRequest.FromString(wire) == request  # not the bytes a request was received as


def test_a_request_processed_off_the_loop_keeps_or_drops_its_received_bytes_as_a_small_one(
    run_collector: RunCollector, make_config: MakeConfig, components: Registry
) -> None:
    """Over INLINE_ITEMS the processors run on a worker thread, in a copy of the request's context: a change they
    report there must still reach the exporters as the request's new bytes."""
    collector = _enriching(run_collector, make_config, components)
    names = [f"s{i}" for i in range(INLINE_ITEMS + 1)]
    plain = trace_request(*names)
    correlated = trace_request(*names)
    set_attribute(correlated.resource_spans[0].scope_spans[0].spans[-1].attributes, "request.id", "r-1")
    exporter = collector.exporter()
    for n, (request, changed) in enumerate(((plain, False), (correlated, True)), start=1):
        sent = _UNKNOWN_FIRST + request.SerializeToString()
        _send(collector.grpc_endpoint, sent)
        got = exporter.wait_items(n * len(names))[-1]
        wire = exporter.wires[-1]
        assert ExportTraceServiceRequest.FromString(wire) == got
        assert (wire == sent) is not changed
        last = got.resource_spans[0].scope_spans[0].spans[-1]
        assert ("correlation.id" in attributes_to_dict(last.attributes)) is changed

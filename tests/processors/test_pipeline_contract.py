import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.pipeline import ComponentID, Signal, item_count


def test_component_id_parse_round_trips() -> None:
    assert ComponentID.parse("otlp/tempo") == ComponentID("otlp", "tempo")
    assert str(ComponentID.parse("batch")) == "batch"
    with pytest.raises(ValueError, match="type/name"):
        ComponentID.parse("otlp/")


def test_item_count_counts_spans_across_resources() -> None:
    req = ExportTraceServiceRequest()
    for n in (2, 3):
        ss = req.resource_spans.add().scope_spans.add()
        for _ in range(n):
            ss.spans.add()
    assert item_count(Signal.TRACES, req) == 5

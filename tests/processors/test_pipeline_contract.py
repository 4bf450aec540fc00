import asyncio
import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.pipeline import (
    INLINE_ITEMS,
    ComponentID,
    CreateSettings,
    ProcessorRun,
    RefusedError,
    Request,
    Signal,
    SyncProcessor,
    item_count,
)


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


class _Recording(SyncProcessor):
    """Records the thread each request was processed on; passes on what ``keep`` says, or raises ``error``."""

    def __init__(self, keep: bool = True, error: Exception | None = None) -> None:
        super().__init__(CreateSettings(ComponentID("recording"), Signal.TRACES), _Collect())
        self.keep, self.error = keep, error
        self.threads: list[str] = []

    def process(self, signal: Signal, request: Request) -> bool:
        self.threads.append(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        return self.keep


class _Collect:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def consume(self, signal: Signal, request: Request) -> None:
        self.requests.append(request)


def _spans(n: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for _ in range(n):
        spans.add()
    return request


@pytest.mark.parametrize(("spans", "off_the_loop"), [(1, False), (INLINE_ITEMS, False), (INLINE_ITEMS + 1, True)])
def test_a_run_of_processors_works_off_the_loop_only_on_a_large_request(spans: int, off_the_loop: bool) -> None:
    first, second, after = _Recording(), _Recording(), _Collect()
    request = _spans(spans)

    asyncio.run(ProcessorRun([first, second], after).consume(Signal.TRACES, request))
    assert after.requests == [request]
    assert len(first.threads) == len(second.threads) == 1
    assert first.threads == second.threads  # the whole run in one place
    # Off the loop on the pipeline's own workers, not the default executor's threads.
    worker = "otel-metrics-processors" if off_the_loop else threading.current_thread().name
    assert first.threads[0].startswith(worker)


@pytest.mark.parametrize("spans", [1, INLINE_ITEMS + 1])
def test_a_processor_that_leaves_nothing_ends_the_run_and_an_error_reaches_the_caller(spans: int) -> None:
    dropping, never, after = _Recording(keep=False), _Recording(), _Collect()
    asyncio.run(ProcessorRun([dropping, never], after).consume(Signal.TRACES, _spans(spans)))
    assert len(dropping.threads) == 1
    assert never.threads == [] and after.requests == []

    refusing = _Recording(error=RefusedError("over the limit", retry_after=2.0))
    with pytest.raises(RefusedError, match="over the limit") as caught:
        asyncio.run(ProcessorRun([refusing, never], after).consume(Signal.TRACES, _spans(spans)))
    assert caught.value.retry_after == 2.0
    assert never.threads == [] and after.requests == []

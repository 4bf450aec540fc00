"""@track_performance: spans and metrics for sync/async functions and methods, errors, concurrency."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from otel_metrics import business_context, correlation_scope, get_correlation_id, track_performance


class PaymentError(Exception):
    pass


@track_performance
def bare(x: int) -> int:
    return x + 1


@track_performance("billing", name="charge_card")
def charge(amount: int) -> dict[str, Any]:
    if amount < 0:
        raise PaymentError("negative amount")
    return {"success": True, "id": "ch_1", "amount": amount}


class Agent:
    @track_performance
    def plan(self) -> list[int]:
        return [1, 2, 3]

    @track_performance(include_metadata=True)
    async def answer(self, q: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"success": False, "answer": q}

    @track_performance(metadata=lambda r: {"answer.words": len(r.split()), "answer.bad": object()})
    def custom(self) -> str:
        return "three little words"

    @track_performance(metadata=lambda r: {"never": 1 / 0})
    def broken_metadata(self) -> str:
        return "ok"


def test_bare_decorator_names_span_after_module(telemetry: Any, receiver: Any) -> None:
    assert bare(1) == 2
    assert bare.__name__ == "bare"
    telemetry.force_flush()
    span = receiver.store.span_named("test_track_performance.bare")
    assert span.attributes["operation.outcome"] == "success"
    assert span.status_code == 0  # UNSET


def test_method_defaults_service_to_class_name(telemetry: Any, receiver: Any) -> None:
    assert Agent().plan() == [1, 2, 3]
    telemetry.force_flush()
    receiver.store.span_named("Agent.plan")


def test_async_method_with_metadata_summary(telemetry: Any, receiver: Any) -> None:
    assert asyncio.run(Agent().answer("hi")) == {"success": False, "answer": "hi"}
    telemetry.force_flush()
    span = receiver.store.span_named("Agent.answer")
    assert span.attributes["result.success"] is False
    assert span.attributes["result.keys"] == ("answer", "success")
    assert span.attributes["result.length"] == 2


def test_custom_metadata_and_broken_metadata_never_raise(telemetry: Any, receiver: Any, caplog: Any) -> None:
    agent = Agent()
    assert agent.custom() == "three little words"
    assert agent.broken_metadata() == "ok"
    telemetry.force_flush()
    span = receiver.store.span_named("Agent.custom")
    assert span.attributes["answer.words"] == 3
    assert isinstance(span.attributes["answer.bad"], str)  # unsupported type stringified, not dropped silently
    assert receiver.store.span_named("Agent.broken_metadata").attributes["operation.outcome"] == "success"
    assert "metadata callable for Agent.broken_metadata raised" in caplog.text


def test_exception_propagates_unchanged_and_is_recorded(telemetry: Any, receiver: Any) -> None:
    with pytest.raises(PaymentError) as info:
        charge(-1)
    assert str(info.value) == "negative amount"
    assert info.traceback[-1].name == "charge"  # the user's frame is still where it was raised
    telemetry.force_flush()
    span = receiver.store.span_named("billing.charge_card")
    assert span.status_code == 2  # ERROR
    assert span.attributes["operation.outcome"] == "failure"
    assert span.attributes["error.type"].endswith("test_track_performance.PaymentError")
    events = [e for e in span.events if e[0] == "exception"]
    assert events and events[0][1]["exception.message"] == "negative amount"
    errors = receiver.store.wait_for(lambda: receiver.store.points("operation.errors"))
    assert errors[0].attributes["error.type"] == span.attributes["error.type"]
    assert errors[0].unit == "{error}"
    calls = {p.attributes["operation.outcome"]: p.value for p in receiver.store.points("operation.calls")}
    assert calls == {"failure": 1}


def test_async_exception_propagates(telemetry: Any, receiver: Any) -> None:
    @track_performance("svc")
    async def fails() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(fails())
    telemetry.force_flush()
    span = receiver.store.span_named("svc.fails")
    assert span.attributes["error.type"] == "KeyError" and span.status_code == 2


def test_nested_spans_share_trace_and_correlation(telemetry: Any, receiver: Any) -> None:
    @track_performance("outer")
    def outer() -> str | None:
        return inner()

    @track_performance("inner")
    def inner() -> str | None:
        return get_correlation_id()

    with correlation_scope("req-1"):
        assert outer() == "req-1"
    telemetry.force_flush()
    o, i = receiver.store.span_named("outer.outer"), receiver.store.span_named("inner.inner")
    assert i.parent_span_id == o.span_id and i.trace_id == o.trace_id
    assert o.attributes["correlation.id"] == i.attributes["correlation.id"] == "req-1"


def test_thread_pool_requests_do_not_leak_correlation_ids(telemetry: Any, receiver: Any) -> None:
    @track_performance("pool")
    def handle(i: int) -> tuple[str | None, str | None]:
        before = get_correlation_id()
        with correlation_scope(f"req-{i}"):
            return before, inner_id()

    @track_performance("pool")
    def inner_id() -> str | None:
        return get_correlation_id()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(handle, range(64)))
    assert [r[1] for r in results] == [f"req-{i}" for i in range(64)]
    assert all(r[0] is None for r in results)
    telemetry.force_flush()
    spans = receiver.store.wait_for(
        lambda: len([s for s in receiver.store.spans() if s.name == "pool.inner_id"]) == 64 and receiver.store.spans()
    )
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        if s.name == "pool.inner_id":
            parent = by_id[s.parent_span_id]
            assert parent.name == "pool.handle"
            assert "correlation.id" not in parent.attributes  # started before its scope
            assert s.attributes["correlation.id"].startswith("req-")


def test_concurrent_asyncio_tasks_keep_their_own_ids(telemetry: Any, receiver: Any) -> None:
    @track_performance("api")
    async def request(i: int) -> str | None:
        with correlation_scope(f"task-{i}"), business_context(tenant_id=f"t{i % 3}"):
            return await step(i)

    @track_performance("api")
    async def step(i: int) -> str | None:
        for _ in range(3):
            await asyncio.sleep(0)  # interleave with the other tasks
        return get_correlation_id()

    async def main() -> list[str | None]:
        return list(await asyncio.gather(*(request(i) for i in range(50))))

    assert asyncio.run(main()) == [f"task-{i}" for i in range(50)]
    telemetry.force_flush()
    steps = receiver.store.wait_for(
        lambda: (
            len([s for s in receiver.store.spans() if s.name == "api.step"]) == 50
            and [s for s in receiver.store.spans() if s.name == "api.step"]
        )
    )
    for s in steps:
        i = int(s.attributes["correlation.id"].split("-")[1])
        assert s.attributes["tenant.id"] == f"t{i % 3}"


def test_metric_dimensions_only_configured_keys_never_correlation(telemetry: Any, receiver: Any) -> None:
    with correlation_scope("never-a-metric-attr"), business_context(tenant_id="acme", user_id="u-1"):
        bare(1)
    telemetry.force_flush()
    span = receiver.store.span_named("test_track_performance.bare")
    assert span.attributes["user.id"] == "u-1" and span.attributes["tenant.id"] == "acme"
    points = receiver.store.wait_for(lambda: receiver.store.points("operation.duration"))
    assert points[0].attributes == {
        "operation.name": "test_track_performance.bare",
        "operation.outcome": "success",
        "tenant.id": "acme",  # configured in the fixture's metric_dimensions
    }
    for name in ("operation.calls", "operation.duration"):
        for p in receiver.store.points(name):
            assert "correlation.id" not in p.attributes and "user.id" not in p.attributes


def test_duration_histogram_carries_exemplar_of_the_trace(telemetry: Any, receiver: Any) -> None:
    bare(2)
    telemetry.force_flush()
    span = receiver.store.span_named("test_track_performance.bare")
    point = receiver.store.wait_for(lambda: receiver.store.points("operation.duration"))[0]
    assert any(e.trace_id.hex() == span.trace_id for e in point.exemplars)


def test_decorator_works_without_configure_and_with_bad_service_name(caplog: Any) -> None:
    @track_performance(123)  # type: ignore[call-overload, untyped-decorator]  # a bad name is the point
    def f() -> int:
        return 7

    with caplog.at_level(logging.ERROR):
        assert f() == 7

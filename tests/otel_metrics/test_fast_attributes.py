"""add_missing_attributes (the decorator's and ContextAttributesSpanProcessor's way to set attributes) gives
exactly what span.set_attributes of the missing keys gives, under every SDK limit."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_metrics import business_context, correlation_scope, track_performance
from otel_metrics._internal import decorator, fast_processors
from otel_metrics._internal.fast_processors import (
    ContextAttributesSpanProcessor,
    PreparedAttributes,
    add_missing_attributes,
)
from otel_metrics._internal.state import STATE
from processors import _sdk_internals
from tests.support.sdk_data import attrs_of

pytestmark = pytest.mark.usefixtures("sdk_path")


class Color(enum.IntEnum):
    RED = 1


def _both(limits: SpanLimits, initial: dict[str, Any], ours: dict[str, Any]) -> tuple[Any, Any]:
    """(span after add_missing_attributes, span after the SDK's set_attributes of the missing keys)."""
    tracer = TracerProvider(span_limits=limits, shutdown_on_exit=False).get_tracer("t")
    fast = tracer.start_span("fast", attributes=initial)
    add_missing_attributes(fast, PreparedAttributes(dict(ours)))
    sdk = tracer.start_span("sdk", attributes=initial)
    sdk.set_attributes({k: v for k, v in ours.items() if k not in initial})
    fast.end()
    sdk.end()
    return fast, sdk


@pytest.mark.parametrize(
    ("limits", "initial", "ours"),
    [
        (SpanLimits(), {}, {"correlation.id": "req-1", "tenant.id": "acme", "n": 3, "ok": True, "x": 1.5}),
        (SpanLimits(), {"tenant.id": "mine", "http.route": "/a"}, {"tenant.id": "acme", "correlation.id": "c"}),
        (SpanLimits(max_span_attributes=2), {"a": "1"}, {"b": "2", "c": "3"}),  # oldest dropped, counted
        (SpanLimits(max_span_attribute_length=3), {}, {"tenant.id": "acme-corp", "n": 12345}),  # truncated
        (SpanLimits(), {}, {"codes": ("a", "b"), "color": Color.RED}),  # not plain: the SDK's own path
    ],
)
def test_same_result_as_set_attributes(limits: SpanLimits, initial: dict[str, Any], ours: dict[str, Any]) -> None:
    fast, sdk = _both(limits, initial, ours)
    assert dict(fast.attributes) == dict(sdk.attributes)
    assert list(fast.attributes) == list(sdk.attributes)  # insertion order too
    assert fast._attributes.dropped == sdk._attributes.dropped


def test_existing_keys_win_and_ended_spans_are_left_alone() -> None:
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    span = tracer.start_span("s", attributes={"tenant.id": "mine"})
    assert isinstance(span, ReadableSpan)
    add_missing_attributes(span, PreparedAttributes({"tenant.id": "acme", "user.id": "u1"}))
    assert dict(attrs_of(span)) == {"tenant.id": "mine", "user.id": "u1"}
    span.end()
    add_missing_attributes(span, PreparedAttributes({"late": "x"}))
    assert "late" not in attrs_of(span)


def test_non_recording_spans_are_ignored() -> None:
    span = trace_api.NonRecordingSpan(trace_api.INVALID_SPAN_CONTEXT)
    add_missing_attributes(span, PreparedAttributes({"tenant.id": "acme"}))  # must not raise
    assert not span.is_recording()


def test_context_processor_sets_correlation_and_business_on_every_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(ContextAttributesSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with correlation_scope("req-42"), business_context(tenant_id="acme"):
        for _ in range(2):  # the second span reuses the per-context cache
            with tracer.start_as_current_span("plain"):
                pass
        with tracer.start_as_current_span("own", attributes={"tenant.id": "other"}):
            pass
    spans = exporter.get_finished_spans()
    assert [dict(s.attributes or {}) for s in spans] == [
        {"tenant.id": "acme", "correlation.id": "req-42"},
        {"tenant.id": "acme", "correlation.id": "req-42"},
        {"tenant.id": "other", "correlation.id": "req-42"},
    ]


def test_sdk_spans_take_the_direct_path_on_a_tested_sdk(monkeypatch: pytest.MonkeyPatch, sdk_path: str) -> None:
    # The point of add_missing_attributes is to skip the SDK's per-attribute checks for the spans the SDK makes;
    # on an SDK whose internals were not tested, the public set_attributes is called instead.
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("s", attributes={"http.route": "/a"})
    assert isinstance(span, ReadableSpan)
    calls: list[Any] = []
    monkeypatch.setattr(span, "set_attributes", calls.append)
    add_missing_attributes(span, PreparedAttributes({"tenant.id": "acme", "http.route": "/b"}))
    if sdk_path == "sdk internals" and _sdk_internals.use_sdk_internals:
        assert calls == [] and dict(attrs_of(span)) == {"http.route": "/a", "tenant.id": "acme"}
    else:
        assert calls == [{"tenant.id": "acme"}]


def test_lookups_cached_per_request_still_answer_for_each_context() -> None:
    # get_business_attributes / get_correlation_id and our processor cache by the context's baggage and local
    # attributes; alternating contexts, nested spans and derived contexts must each get their own answer.
    from opentelemetry import baggage
    from opentelemetry import context as context_api

    from processors.business import get_business_attributes, set_business_attributes
    from processors.correlation import get_correlation_id, set_correlation_id

    a = set_business_attributes({"tenant.id": "a"}, context=set_correlation_id("req-a", context_api.Context()))
    b = set_business_attributes({"tenant.id": "b", "plan": "pro"}, propagate=True, context=context_api.Context())
    derived = baggage.set_baggage("unrelated", "x", a)  # new baggage dict, same values
    for _ in range(2):
        assert get_business_attributes(a) == {"tenant.id": "a"}
        assert get_correlation_id(a) == "req-a"
        assert get_business_attributes(b) == {"tenant.id": "b", "plan": "pro"}
        assert get_correlation_id(b) is None
        assert get_business_attributes(derived) == {"tenant.id": "a"}
        assert get_correlation_id(derived) == "req-a"
    mine = get_business_attributes(a)
    mine["tenant.id"] = "changed by the caller"
    assert get_business_attributes(a) == {"tenant.id": "a"}  # each caller gets its own dict

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(ContextAttributesSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with correlation_scope("req-1"), business_context(tenant_id="acme"), tracer.start_as_current_span("outer"):
        with (
            tracer.start_as_current_span("nested"),
            business_context(tenant_id="inner"),
            tracer.start_as_current_span("innermost"),
        ):
            pass
        with correlation_scope("req-2"), tracer.start_as_current_span("other-request"):
            pass
    got = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert got == {
        "outer": {"tenant.id": "acme", "correlation.id": "req-1"},
        "nested": {"tenant.id": "acme", "correlation.id": "req-1"},
        "innermost": {"tenant.id": "inner", "correlation.id": "req-1"},
        "other-request": {"tenant.id": "acme", "correlation.id": "req-2"},
    }


def _pipeline(*first: SpanProcessor, ours: bool = True) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in first:
        provider.add_span_processor(processor)
    if ours:
        provider.add_span_processor(ContextAttributesSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@track_performance("svc")
def _decorated() -> int:
    return 1


@pytest.mark.parametrize("ours", [True, False], ids=["our processor", "a provider without it"])
def test_decorated_spans_get_context_attributes_and_outcome_in_one_write(
    monkeypatch: pytest.MonkeyPatch, ours: bool
) -> None:
    provider, exporter = _pipeline(ours=ours)
    monkeypatch.setattr(STATE, "tracer", provider.get_tracer("otel_metrics"))
    writes: list[dict[str, Any]] = []

    def counted(span: Any, prepared: PreparedAttributes) -> None:
        writes.append(prepared.attributes)
        add_missing_attributes(span, prepared)

    monkeypatch.setattr(fast_processors, "add_missing_attributes", counted)
    monkeypatch.setattr(decorator, "add_missing_attributes", counted)
    with correlation_scope("req-1"), business_context(tenant_id="acme"):
        _decorated()
        _decorated()
    expected = {"tenant.id": "acme", "correlation.id": "req-1", "operation.outcome": "success"}
    assert [list(attrs_of(s).items()) for s in exporter.get_finished_spans()] == [list(expected.items())] * 2
    assert writes == [expected] * 2  # one write per span, by the processor when it runs


def test_other_spans_never_get_the_decorators_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = _pipeline()
    tracer = provider.get_tracer("t")

    class _Failing(trace_api.NoOpTracer):
        def start_span(self, *args: Any, **kwargs: Any) -> trace_api.Span:
            raise RuntimeError("start_span failed")

    with correlation_scope("req-1"):
        monkeypatch.setattr(STATE, "tracer", provider.get_tracer("otel_metrics"))
        _decorated()
        with tracer.start_as_current_span("after a decorated span"):
            pass
        monkeypatch.setattr(STATE, "tracer", _Failing())
        assert _decorated() == 1  # runs without a span
        with tracer.start_as_current_span("after a failed start"):
            pass
    got = {s.name: attrs_of(s) for s in exporter.get_finished_spans()}
    assert got["after a decorated span"] == {"correlation.id": "req-1"}
    assert got["after a failed start"] == {"correlation.id": "req-1"}


def test_a_decorated_call_inside_an_earlier_processor_leaves_both_spans_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class _CallsDecorated(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if span.name == "svc._decorated" and not self.called:
                self.called = True
                _decorated()

        called = False

    provider, exporter = _pipeline(_CallsDecorated())
    monkeypatch.setattr(STATE, "tracer", provider.get_tracer("otel_metrics"))
    with correlation_scope("req-1"):
        _decorated()
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert attrs_of(span) == {"correlation.id": "req-1", "operation.outcome": "success"}


class _Recorder(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append(f"on_start {span.name} {dict(span.attributes)}")

    def _on_ending(self, span: Any) -> None:
        self.calls.append(f"_on_ending {span.name}")

    def on_end(self, span: Any) -> None:
        self.calls.append(f"on_end {span.name}")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append("force_flush")
        return False

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def test_the_context_processor_hands_everything_else_to_the_processor_it_wraps() -> None:
    inner = _Recorder()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(ContextAttributesSpanProcessor(inner))
    with correlation_scope("req-1"), provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert provider.force_flush() is False  # the inner's answer
    provider.shutdown()
    assert inner.calls == [
        "on_start s {'correlation.id': 'req-1'}",  # after our attributes
        "_on_ending s",
        "on_end s",
        "force_flush",
        "shutdown",
    ]


def test_start_hook_skips_only_processors_known_to_do_nothing_on_start() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from processors.sdk import EnrichingSpanProcessor, start_hook

    recorder = _Recorder()
    batch = SimpleSpanProcessor(InMemorySpanExporter())
    assert start_hook(batch) is None
    assert start_hook(EnrichingSpanProcessor(batch, price_table=None, redact=True)) is None
    assert start_hook(recorder) == recorder.on_start
    around_recorder = EnrichingSpanProcessor(recorder, price_table=None, redact=True)
    assert start_hook(around_recorder) == around_recorder.on_start
    batching = BatchSpanProcessor(InMemorySpanExporter())
    try:
        assert start_hook(batching) is None
    finally:
        batching.shutdown()  # type: ignore[no-untyped-call]


def test_the_handshake_slot_keeps_no_span_after_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, _ = _pipeline()
    monkeypatch.setattr(STATE, "tracer", provider.get_tracer("otel_metrics"))
    _decorated()
    assert fast_processors.STARTING.parent is None

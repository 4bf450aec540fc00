"""EnrichingSpanProcessor on a real TracerProvider: cost, redaction, pass-through, never raising."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from processors.cost import PriceTable
from processors.redaction import REDACTED
from processors.sdk import EnrichingSpanProcessor
from tests.support.sdk_data import attrs_of

pytestmark = pytest.mark.usefixtures("sdk_path")

GENAI: dict[str, AttributeValue] = {
    "gen_ai.request.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}


def _provider(
    *, table: PriceTable | None, redact: bool, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=table, redact=redact))
    return provider, exporter


def test_cost_is_added_to_spans_with_tokens_and_no_cost() -> None:
    provider, exporter = _provider(table=PriceTable.bundled(), redact=False)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("chat", attributes=GENAI) as span:
        span.add_event("done", {"k": "v"})
    with tracer.start_as_current_span("priced", attributes={**GENAI, "cost.usd": 1.5}):
        pass
    with tracer.start_as_current_span("plain", attributes={"http.route": "/x"}):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    chat = spans["chat"]
    assert attrs_of(chat)["cost.usd"] == 0.0075
    assert attrs_of(chat)["gen_ai.usage.input_tokens"] == 1000
    assert [e.name for e in chat.events] == ["done"]
    assert chat.context == span.get_span_context()
    assert chat.resource is provider.resource
    assert chat.instrumentation_scope is not None and chat.instrumentation_scope.name == "t"
    assert chat.end_time is not None and chat.start_time is not None
    assert attrs_of(spans["priced"])["cost.usd"] == 1.5
    assert "cost.usd" not in attrs_of(spans["plain"])


def test_no_price_table_means_no_cost() -> None:
    provider, exporter = _provider(table=None, redact=False)
    with provider.get_tracer("t").start_as_current_span("chat", attributes=GENAI):
        pass
    assert "cost.usd" not in attrs_of(exporter.get_finished_spans()[0])


def test_redaction_of_span_and_event_attributes_keeps_token_counts() -> None:
    provider, exporter = _provider(table=PriceTable.bundled(), redact=True)
    with provider.get_tracer("t").start_as_current_span(
        "call", attributes={**GENAI, "http.request.header.authorization": ("Bearer abcdefghijkl",)}
    ) as span:
        span.add_event("exception", {"exception.message": "bad password=hunter2", "exception.type": "E"})
        span.add_event("plain", {"n": 1})
    (out,) = exporter.get_finished_spans()
    assert attrs_of(out)["http.request.header.authorization"] == (REDACTED,)
    assert attrs_of(out)["gen_ai.usage.input_tokens"] == 1000
    assert attrs_of(out)["gen_ai.usage.output_tokens"] == 500
    assert attrs_of(out)["cost.usd"] == 0.0075
    assert dict(out.events[0].attributes or {}) == {
        "exception.message": f"bad password={REDACTED}",
        "exception.type": "E",
    }
    assert dict(out.events[1].attributes or {}) == {"n": 1}


def test_redaction_covers_links_status_and_resource_once_per_resource() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"db.passWord": "hunter2", "service.name": "svc"}))
    provider.add_span_processor(EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=None, redact=True))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent:
        pass
    link = Link(parent.get_span_context(), {"pass_word": "hunter2", "n": 1})
    with tracer.start_as_current_span("child", links=[link]) as span:
        span.set_status(Status(StatusCode.ERROR, "login failed: password=hunter2"))
    parent_out, child_out = exporter.get_finished_spans()
    assert dict(child_out.links[0].attributes or {}) == {"pass_word": REDACTED, "n": 1}
    assert child_out.links[0].context == parent.get_span_context()
    assert child_out.status.status_code is StatusCode.ERROR
    assert child_out.status.description == f"login failed: password={REDACTED}"
    for out in (parent_out, child_out):
        assert dict(out.resource.attributes) == {**provider.resource.attributes, "db.passWord": REDACTED}
    assert parent_out.resource is child_out.resource  # redacted once, shared


class _Text(str):
    pass


def test_a_clean_attribute_set_seen_before_does_not_hide_secrets_in_later_spans() -> None:
    provider, exporter = _provider(table=None, redact=True)
    tracer = provider.get_tracer("t")
    clean: dict[str, AttributeValue] = {"tenant.id": "acme", "note": "nothing to hide here"}
    later: list[dict[str, AttributeValue]] = [
        clean,  # equal to the clean set: unchanged
        {"tenant.id": _Text("acme"), "note": _Text("nothing to hide here")},  # equal text, str subclass
        {"tenant.id": "acme", "note": "login with password=hunter2"},  # same keys, a secret value
        {**clean, "db.password": "hunter2"},  # one key more, a sensitive one
        {"tenant.id": "acme"},  # a subset
        {"tenant.id": "acme", "note": 12},  # not all str: compared by value
        {"tenant.id": "acme", "note": 12},
    ]
    for attributes in [clean, *later]:
        with tracer.start_as_current_span("s", attributes=attributes):
            pass
    got = [attrs_of(s) for s in exporter.get_finished_spans()]
    assert got == [
        clean,
        clean,
        clean,
        {"tenant.id": "acme", "note": f"login with password={REDACTED}"},
        {**clean, "db.password": REDACTED},
        {"tenant.id": "acme"},
        {"tenant.id": "acme", "note": 12},
        {"tenant.id": "acme", "note": 12},
    ]


def test_one_processor_on_two_providers_redacts_each_resource() -> None:
    exporter = InMemorySpanExporter()
    enriching = EnrichingSpanProcessor(SimpleSpanProcessor(exporter), price_table=None, redact=True)
    secret = TracerProvider(resource=Resource.create({"db.password": "hunter2", "service.name": "a"}))
    plain = TracerProvider(resource=Resource.create({"service.name": "b"}))
    for provider in (secret, plain):
        provider.add_span_processor(enriching)
    for provider in (secret, plain, secret, plain):
        with provider.get_tracer("t").start_as_current_span("s"):
            pass
    resources = [dict(s.resource.attributes) for s in exporter.get_finished_spans()]
    redacted = {**secret.resource.attributes, "db.password": REDACTED}
    assert resources == [redacted, dict(plain.resource.attributes)] * 2


def test_dropped_attribute_count_is_preserved() -> None:
    provider, exporter = _provider(table=PriceTable.bundled(), redact=False, limits=SpanLimits(max_span_attributes=4))
    with provider.get_tracer("t").start_as_current_span("chat", attributes={"extra": 1, **GENAI, "more": 2}):
        pass
    (out,) = exporter.get_finished_spans()
    assert out.dropped_attributes == 1
    assert "extra" not in attrs_of(out)
    assert attrs_of(out)["cost.usd"] == 0.0075


class _Recorder(SpanProcessor):
    """A real (trivial) inner processor that keeps what it was given."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []
        self.started = 0
        self.flushed = False
        self.shut = False

    def on_start(self, span: object, parent_context: object = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushed = True
        return True

    def shutdown(self) -> None:
        self.shut = True


def test_unchanged_spans_are_passed_through_without_a_copy_and_calls_delegate() -> None:
    recorder = _Recorder()
    enriching = EnrichingSpanProcessor(recorder, price_table=PriceTable.bundled(), redact=True)
    provider = TracerProvider()
    provider.add_span_processor(enriching)
    with provider.get_tracer("t").start_as_current_span("plain", attributes={"http.route": "/x", "n": 1}):
        pass
    original = ReadableSpan("manual", attributes={"a": "b"})
    enriching.on_end(original)
    assert recorder.ended[1] is original
    assert recorder.started == 1
    assert enriching.force_flush() and recorder.flushed
    provider.shutdown()
    assert recorder.shut


class _BrokenTable(PriceTable):
    def _resolve(self, model: str, provider: str | None) -> None:
        raise RuntimeError("boom")


def test_failures_never_reach_the_caller_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    recorder = _Recorder()
    enriching = EnrichingSpanProcessor(recorder, price_table=_BrokenTable({}), redact=True)
    provider = TracerProvider()
    provider.add_span_processor(enriching)
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="processors.sdk"):
        for _ in range(3):
            with tracer.start_as_current_span("chat", attributes={**GENAI, "password": "x"}):
                pass
    assert len(recorder.ended) == 3
    assert all(dict(s.attributes or {})["password"] == "x" for s in recorder.ended)  # original passed on
    assert len([r for r in caplog.records if "enrichment failed" in r.getMessage()]) == 1


def test_wrong_types_and_unknown_models_give_no_cost(caplog: pytest.LogCaptureFixture, sdk_path: str) -> None:
    unknown = f"sdk-test-unknown-model-{sdk_path.replace(' ', '-')}"  # an unknown model is logged once a process
    provider, exporter = _provider(table=PriceTable.bundled(), redact=False)
    tracer = provider.get_tracer("t")
    bad: list[Mapping[str, object]] = [
        {**GENAI, "gen_ai.usage.input_tokens": -5},
        {**GENAI, "gen_ai.usage.input_tokens": "1000"},
        {**GENAI, "gen_ai.request.model": unknown},
    ]
    with caplog.at_level(logging.WARNING, logger="processors.cost"):
        for attrs in bad:
            with tracer.start_as_current_span("chat", attributes=dict(attrs)):  # type: ignore[arg-type]
                pass
    assert all("cost.usd" not in attrs_of(s) for s in exporter.get_finished_spans())
    assert unknown in caplog.text


class _Exploding(SpanProcessor):
    def on_start(self, span: object, parent_context: object = None) -> None:
        raise RuntimeError("start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("end")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("flush")

    def shutdown(self) -> None:
        raise RuntimeError("shutdown")


def test_a_failing_inner_processor_never_reaches_user_code(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    enriching = EnrichingSpanProcessor(_Exploding(), price_table=PriceTable.bundled(), redact=True)
    provider.add_span_processor(enriching)
    with caplog.at_level(logging.WARNING, logger="processors.sdk"):
        for _ in range(2):
            with provider.get_tracer("t").start_as_current_span("x", attributes=GENAI):
                pass
        assert enriching.force_flush() is False
        provider.shutdown()
    failures = sorted(r.getMessage() for r in caplog.records)
    assert failures == [f"span processor {w} failed" for w in ("force_flush", "on_end", "on_start", "shutdown")]

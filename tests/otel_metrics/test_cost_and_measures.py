"""record_llm_usage / record_cost (exact Decimal money) and the business measures, as exported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace

import otel_metrics
from otel_metrics import business_context, record_cost, record_llm_usage, track_performance


def test_llm_usage_sets_semconv_attributes_cost_and_metrics(telemetry: Any, receiver: Any) -> None:
    from processors.cost import default_price_table

    expected = default_price_table().llm_cost("gpt-4o", 1200, 300, cached_input_tokens=200)
    assert isinstance(expected, Decimal)

    @track_performance("agent")
    def call_llm() -> Decimal | None:
        return record_llm_usage("gpt-4o", 1200, 300, provider="openai", cached_input_tokens=200, response_id="r-1")

    with business_context(tenant_id="acme"):
        cost = call_llm()
    assert cost == expected
    telemetry.force_flush()
    operation = receiver.store.span_named("agent.call_llm")
    span = receiver.store.span_named("chat gpt-4o")  # the call's own GenAI client span, a child of the operation
    assert span.parent_span_id == operation.span_id and span.kind == trace.SpanKind.CLIENT.value + 1
    assert "cost.usd" not in operation.attributes and "gen_ai.usage.input_tokens" not in operation.attributes
    a = span.attributes
    assert a["gen_ai.request.model"] == "gpt-4o" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.response.id"] == "r-1"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1200, 300)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["cost.usd"] == float(expected) and a["tenant.id"] == "acme"
    tokens = receiver.store.wait_for(lambda: receiver.store.points("gen_ai.client.token.usage"))
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert by_type["input"].value == (1, 1200) and by_type["output"].value == (1, 300)
    assert by_type["input"].unit == "{token}" and by_type["input"].attributes["tenant.id"] == "acme"
    costs = receiver.store.points("cost.usd")
    assert costs[0].value == float(expected) and costs[0].unit == "{USD}"
    assert costs[0].attributes["cost.category"] == "llm" and costs[0].attributes["tenant.id"] == "acme"


def test_several_calls_in_one_operation_each_keep_their_tokens_and_cost(telemetry: Any, receiver: Any) -> None:
    """Tokens and cost describe the same calls: one span per call, cache writes and reasoning priced apart."""
    from processors.cost import default_price_table

    table = default_price_table()
    with trace.get_tracer("t").start_as_current_span("plan"):
        first = record_llm_usage(
            "claude-sonnet-4-20250514",
            10_000,
            500,
            provider="anthropic",
            cached_input_tokens=1_000,
            cache_write_tokens=3_000,
            cache_write_1h_tokens=1_000,
        )
        second = record_llm_usage("o3", 100, 900, provider="openai", reasoning_tokens=700)
    assert first == Decimal("0.0393")  # 6,000*3 + 1,000*0.30 + 2,000*3.75 + 1,000*6 + 500*15 per million
    assert second == table.llm_cost("o3", 100, 900, reasoning_tokens=700, provider="openai")
    telemetry.force_flush()
    claude = receiver.store.span_named("chat claude-sonnet-4-20250514").attributes
    assert (claude["gen_ai.usage.input_tokens"], claude["gen_ai.usage.cache_creation.input_tokens"]) == (10_000, 3_000)
    assert claude["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] == 1_000
    assert claude["cost.usd"] == 0.0393
    o3 = receiver.store.span_named("chat o3").attributes
    assert (o3["gen_ai.usage.output_tokens"], o3["gen_ai.usage.reasoning.output_tokens"]) == (900, 700)
    assert o3["cost.usd"] == float(second or 0)
    assert "cost.usd" not in receiver.store.span_named("plan").attributes


def test_costs_add_up_exactly_on_one_span(telemetry: Any, receiver: Any) -> None:
    with trace.get_tracer("t").start_as_current_span("multi"):
        assert record_cost("0.1", category="speech", **{"speech.minutes": 2}) == Decimal("0.1")
        assert record_cost(Decimal("0.2"), category="speech") == Decimal("0.2")
    telemetry.force_flush()
    span = receiver.store.span_named("multi")
    assert span.attributes["cost.usd"] == 0.3  # Decimal sum, not 0.30000000000000004
    assert span.attributes["cost.category"] == "speech" and span.attributes["speech.minutes"] == 2
    points = receiver.store.wait_for(lambda: receiver.store.points("cost.usd"))
    assert (
        points[0].attributes
        == {
            "cost.category": "speech",
        }
        or points[0].attributes["cost.category"] == "speech"
    )
    assert abs(points[0].value - 0.3) < 1e-12


def test_unknown_model_reports_once_sets_no_cost_and_is_counted(telemetry: Any, receiver: Any, caplog: Any) -> None:
    with trace.get_tracer("t").start_as_current_span("unknown"):
        assert record_llm_usage("no-such-model-xyz", 10, 10) is None
        assert record_llm_usage("no-such-model-xyz", 10, 10) is None
    telemetry.force_flush()
    calls = [s for s in receiver.store.spans() if s.name == "chat no-such-model-xyz"]
    assert len(calls) == 2 and all("cost.usd" not in s.attributes for s in calls)
    assert all(s.attributes["gen_ai.usage.input_tokens"] == 10 for s in calls)
    assert caplog.text.count("no-such-model-xyz") == 1
    unpriced = receiver.store.wait_for(lambda: receiver.store.points("gen_ai.client.unpriced_calls"))
    assert unpriced[0].value == 2 and unpriced[0].attributes["gen_ai.request.model"] == "no-such-model-xyz"


def test_bad_input_never_raises(telemetry: Any, receiver: Any) -> None:
    assert record_llm_usage("gpt-4o", -1, 10) is None
    assert record_llm_usage("gpt-4o", 1.5, 10) is None  # type: ignore[arg-type]
    assert record_llm_usage("gpt-4o", "10", 10) is None  # type: ignore[arg-type]
    assert record_llm_usage(None, 1, 1) is None  # type: ignore[arg-type]
    assert record_llm_usage("gpt-4o", 10, 10, cached_input_tokens=11) is None  # more cached than input
    assert record_llm_usage("gpt-4o", 10, 10, reasoning_tokens=11) is None
    assert record_cost(-1, category="x") is None
    assert record_cost("abc", category="x") is None
    assert record_cost(float("nan"), category="x") is None
    assert record_cost(1, category="") is None
    otel_metrics.record_satisfaction("great")  # type: ignore[arg-type]
    otel_metrics.record_satisfaction(7, scale=5)
    otel_metrics.record_resource_utilization("pool", 1.5)
    otel_metrics.record_model_quality("m", accuracy=None, confidence=0.5, sample_size=3)  # type: ignore[arg-type]
    otel_metrics.record_error(None, severity="apocalyptic")  # type: ignore[arg-type]
    telemetry.force_flush()
    assert receiver.store.points("cost.usd") == []
    assert receiver.store.points("app.satisfaction.score") == []


def test_business_measures_are_exported_with_documented_names(telemetry: Any, receiver: Any) -> None:
    with trace.get_tracer("t").start_as_current_span("measures"):
        otel_metrics.record_satisfaction(4, scale=5, feedback="fast answer")
        otel_metrics.record_feature_usage("search", "query", duration_s=0.2, success=True)
        otel_metrics.record_model_quality("gpt-4o", accuracy=0.9, confidence=0.8, sample_size=50)
        assert otel_metrics.record_optimization_impact("cache", before=2.0, after=0.5, unit="s") == 0.75
        otel_metrics.record_resource_utilization("db.pool", 0.6)
        otel_metrics.record_error(TimeoutError("slow"), severity="warning", recovered=True)
        otel_metrics.record_agent_selection("planner", complexity_score=0.7, reason="multi-step")
        otel_metrics.record_tool_call("web_search", duration_s=1.2, success=False)
    telemetry.force_flush()
    store = receiver.store
    store.wait_for(lambda: store.points("app.tool.calls"))
    assert store.points("app.satisfaction.score")[0].value == (1, 0.8)
    usage = store.points("app.feature.usage")[0]
    assert usage.attributes == {
        "feature.name": "search",
        "feature.action": "query",
        "operation.outcome": "success",
    }
    acc = store.points("app.model.accuracy")[0]
    assert acc.value == 0.9 and acc.attributes == {"gen_ai.request.model": "gpt-4o"}
    assert store.points("app.model.evaluation.samples")[0].value == 50
    values = {p.attributes["optimization.phase"]: p.value for p in store.points("app.optimization.value")}
    assert values == {"before": 2.0, "after": 0.5}
    assert store.points("app.optimization.improvement")[0].value == 0.75
    assert store.points("app.resource.utilization")[0].value == 0.6
    err = store.points("app.errors")[0]
    assert err.attributes == {
        "error.type": "TimeoutError",
        "error.severity": "warning",
        "error.recovered": True,
    }
    assert store.points("app.agent.selections")[0].attributes == {"gen_ai.agent.name": "planner"}
    tool = store.points("app.tool.calls")[0]
    assert tool.attributes == {"gen_ai.tool.name": "web_search", "operation.outcome": "failure"}
    span = store.span_named("measures")
    events = dict(span.events)
    assert events["app.satisfaction"]["app.satisfaction.feedback"] == "fast answer"
    assert events["app.agent.selection"]["app.agent.selection.reason"] == "multi-step"
    assert events["app.error"]["exception.message"] == "slow"


def test_cost_and_token_metrics_stay_exact_under_head_sampling(receiver: Any, monkeypatch: Any) -> None:
    """A 10 % head sampler keeps about a tenth of the call spans; the cost and token counters count every call."""
    from processors.cost import default_price_table

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    tel = otel_metrics.configure("sampled-service", endpoint=receiver.endpoint)
    try:

        @track_performance("agent")
        def answer() -> None:
            record_llm_usage("gpt-4o-mini", 1000, 100, provider="openai")

        calls = 300
        for _ in range(calls):
            answer()
        tel.force_flush()
        unit = default_price_table().llm_cost("gpt-4o-mini", 1000, 100, provider="openai")
        assert unit is not None
        costs = receiver.store.wait_for(lambda: receiver.store.points("cost.usd"))
        assert abs(sum(p.value for p in costs) - float(unit * calls)) < 1e-12
        tokens = receiver.store.points("gen_ai.client.token.usage")
        by_type = {p.attributes["gen_ai.token.type"]: p.value for p in tokens}
        assert by_type["input"] == (calls, 1000 * calls) and by_type["output"] == (calls, 100 * calls)
        spans = [s for s in receiver.store.spans() if s.name == "chat gpt-4o-mini"]
        assert 0 < len(spans) < calls // 3  # ~30 expected: binomial(300, 0.1) is below 100 but for ~1e-30
    finally:
        tel.shutdown()


def test_token_and_cost_metrics_stay_exact_under_ten_percent_head_sampling(receiver: Any, monkeypatch: Any) -> None:
    """Metrics do not depend on span sampling: with 10 % of traces sampled (OTEL_TRACES_SAMPLER), every call still
    counts in gen_ai.client.token.usage and cost.usd, while only the sampled ones have a span."""
    import random

    from processors.cost import default_price_table

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    random.seed(20261202)  # the SDK's trace ids, and so which traces are sampled, come from the random module
    telemetry = otel_metrics.configure("sampled-service", endpoint=receiver.endpoint)
    assert not telemetry.disabled
    try:
        calls = 200
        expected = default_price_table().llm_cost("gpt-4o", 1200, 300)
        assert isinstance(expected, Decimal)
        tracer = trace.get_tracer("t")
        for _ in range(calls):
            with tracer.start_as_current_span("request"):
                assert record_llm_usage("gpt-4o", 1200, 300, provider="openai") == expected
        telemetry.force_flush()
        sampled = [s for s in receiver.store.spans() if s.name == "chat gpt-4o"]
        assert 0 < len(sampled) < calls / 2
        tokens = receiver.store.wait_for(lambda: receiver.store.points("gen_ai.client.token.usage"))
        by_type = {p.attributes["gen_ai.token.type"]: p.value for p in tokens}
        assert by_type == {"input": (calls, calls * 1200), "output": (calls, calls * 300)}
        (cost,) = {p.value for p in receiver.store.points("cost.usd")}
        assert cost == pytest.approx(calls * float(expected), rel=1e-12)
    finally:
        telemetry.shutdown()

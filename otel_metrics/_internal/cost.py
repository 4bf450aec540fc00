"""``record_llm_usage`` and ``record_cost``: GenAI semconv attributes and exact (Decimal) cost on the span and
in metrics. Money stays Decimal until export, where OTel attributes and metric points need a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry import trace as trace_api

from otel_metrics._internal.safety import internal_error, report_once
from otel_metrics._internal.scopes import clean_attributes
from otel_metrics._internal.state import STATE, metric_dimensions_from_context
from processors.cost.rates import Usage

COST_USD = "cost.usd"
COST_CATEGORY = "cost.category"
REQUEST_MODEL = "gen_ai.request.model"
PROVIDER_NAME = "gen_ai.provider.name"
OPERATION_NAME = "gen_ai.operation.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
CACHE_WRITE_1H_TOKENS = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
RESPONSE_ID = "gen_ai.response.id"
TOKEN_TYPE = "gen_ai.token.type"
CATEGORY_LLM = "llm"
# Metric attributes that record_cost(**attributes) may carry besides cost.category; anything else goes on the
# span only (bounded metric cardinality).
_COST_METRIC_KEYS = (REQUEST_MODEL, PROVIDER_NAME)


def _tokens(value: Any, field: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        report_once(
            f"record_llm_usage:{field}:{type(value).__name__}",
            "otel_metrics: record_llm_usage %s must be a non-negative integer, got %r; usage not recorded",
            field,
            value,
        )
        return None
    return int(value)


def _add_span_cost(span: trace_api.Span, amount: Decimal) -> None:
    # Several costs in one span add up (e.g. two LLM calls inside one tracked operation).
    existing = getattr(span, "attributes", None)
    previous = existing.get(COST_USD) if existing else None
    total = amount + Decimal(str(previous)) if isinstance(previous, int | float) else amount
    span.set_attribute(COST_USD, float(total))


def record_llm_usage(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    provider: str | None = None,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    reasoning_tokens: int = 0,
    operation: str = "chat",
    response_id: str | None = None,
) -> Decimal | None:
    """Record one LLM call: a GenAI client span ``{operation} {model}`` (a child of the current span) with its
    semantic-convention attributes and exact ``cost.usd``, and the token and cost metrics; returns its cost.

    Counts follow the semantic conventions: ``input_tokens`` includes ``cached_input_tokens`` (cache reads) and
    ``cache_write_tokens`` (of which ``cache_write_1h_tokens`` with a one-hour TTL); ``output_tokens`` includes
    ``reasoning_tokens``. Each call gets its own span, so several calls in one operation keep their own model,
    tokens and cost. Unknown models (not in the price table) are reported once, counted in
    ``gen_ai.client.unpriced_calls`` and leave ``cost.usd`` unset: None is returned. Bad input (negative or
    non-integer counts, an empty model, cached counts above the input) is logged and nothing is recorded.
    """
    try:
        if not isinstance(model, str) or not model:
            report_once(
                f"record_llm_usage:model:{model!r}",
                "otel_metrics: record_llm_usage model must be a non-empty str, got %r; usage not recorded",
                model,
            )
            return None
        counts = [
            _tokens(value, name)
            for name, value in (
                ("input_tokens", input_tokens),
                ("output_tokens", output_tokens),
                ("cached_input_tokens", cached_input_tokens),
                ("cache_write_tokens", cache_write_tokens),
                ("cache_write_1h_tokens", cache_write_1h_tokens),
                ("reasoning_tokens", reasoning_tokens),
            )
        ]
        if any(n is None for n in counts):
            return None
        usage = Usage(*counts)  # type: ignore[arg-type]
        problem = usage.problem()
        if problem is not None:
            report_once(f"record_llm_usage:{problem}", "otel_metrics: record_llm_usage: %s; not recorded", problem)
            return None
        cost = STATE.price_table.cost(model, usage, provider=provider)
        base: dict[str, Any] = {REQUEST_MODEL: model, OPERATION_NAME: str(operation)}
        if provider:
            base[PROVIDER_NAME] = str(provider)
        _call_span(base, usage, cost, response_id)
        _call_metrics(base, usage, cost, provider)
        return cost
    except Exception:
        internal_error("record_llm_usage")
        return None


def _call_span(base: dict[str, Any], usage: Usage, cost: Decimal | None, response_id: str | None) -> None:
    if not trace_api.get_current_span().is_recording():
        return  # no trace to describe the call in (tracing off, or not sampled)
    attributes: dict[str, Any] = {
        **base,
        INPUT_TOKENS: usage.input_tokens,
        OUTPUT_TOKENS: usage.output_tokens,
    }
    for key, value in (
        (CACHED_INPUT_TOKENS, usage.cache_read_tokens),
        (CACHE_WRITE_TOKENS, usage.cache_write_tokens),
        (CACHE_WRITE_1H_TOKENS, usage.cache_write_1h_tokens),
        (REASONING_TOKENS, usage.reasoning_tokens),
    ):
        if value:
            attributes[key] = value
    if response_id:
        attributes[RESPONSE_ID] = str(response_id)
    if cost is not None:
        attributes[COST_USD] = float(cost)
    name = f"{base[OPERATION_NAME]} {base[REQUEST_MODEL]}"
    STATE.tracer.start_span(name, kind=trace_api.SpanKind.CLIENT, attributes=attributes).end()


def _call_metrics(base: dict[str, Any], usage: Usage, cost: Decimal | None, provider: str | None) -> None:
    dims = metric_dimensions_from_context()
    inst = STATE.instruments()
    metric_attrs = {**base, **dims}
    inst.token_usage.record(usage.input_tokens, {**metric_attrs, TOKEN_TYPE: "input"})
    inst.token_usage.record(usage.output_tokens, {**metric_attrs, TOKEN_TYPE: "output"})
    if cost is None:
        inst.unpriced_calls.add(1, metric_attrs)
        return
    cost_attrs = {COST_CATEGORY: CATEGORY_LLM, REQUEST_MODEL: base[REQUEST_MODEL], **dims}
    if provider:
        cost_attrs[PROVIDER_NAME] = str(provider)
    inst.cost.add(float(cost), cost_attrs)


def record_cost(amount_usd: Decimal | int | float | str, *, category: str, **attributes: Any) -> Decimal | None:
    """Record a cost that is not LLM tokens (speech minutes, API calls, compute) in USD.

    The amount is added to ``cost.usd`` on the current span with ``cost.category``; ``attributes`` go on the
    span (and ``gen_ai.request.model`` / ``gen_ai.provider.name`` also on the metric). Returns the amount as
    Decimal, or None for an invalid amount (negative, not a number), which is logged and not recorded.
    """
    try:
        try:
            amount = amount_usd if isinstance(amount_usd, Decimal) else Decimal(str(amount_usd))
        except (InvalidOperation, ValueError):
            amount = Decimal("NaN")
        if isinstance(amount_usd, bool) or not amount.is_finite() or amount < 0:
            report_once(
                f"record_cost:{amount_usd!r}",
                "otel_metrics: record_cost amount_usd must be a non-negative number, got %r; not recorded",
                amount_usd,
            )
            return None
        if not isinstance(category, str) or not category:
            report_once(
                f"record_cost:category:{category!r}",
                "otel_metrics: record_cost category must be a non-empty str, got %r; not recorded",
                category,
            )
            return None
        extra = clean_attributes(attributes, where="record_cost")
        span = trace_api.get_current_span()
        if span.is_recording():
            span.set_attributes({**extra, COST_CATEGORY: category})
            _add_span_cost(span, amount)
        metric_attrs = {COST_CATEGORY: category, **metric_dimensions_from_context()}
        for key in _COST_METRIC_KEYS:
            if key in extra:
                metric_attrs[key] = extra[key]
        STATE.instruments().cost.add(float(amount), metric_attrs)
        return amount
    except Exception:
        internal_error("record_cost")
        return None

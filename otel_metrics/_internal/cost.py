"""``record_llm_usage`` and ``record_cost``: GenAI semconv attributes and exact (Decimal) cost on the span and
in metrics. Money stays Decimal until export, where OTel attributes and metric points need a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry import trace as trace_api

from otel_metrics._internal.safety import internal_error, report_once
from otel_metrics._internal.scopes import clean_attributes
from otel_metrics._internal.state import STATE, metric_dimensions_from_context

COST_USD = "cost.usd"
COST_CATEGORY = "cost.category"
REQUEST_MODEL = "gen_ai.request.model"
PROVIDER_NAME = "gen_ai.provider.name"
OPERATION_NAME = "gen_ai.operation.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
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
    operation: str = "chat",
) -> Decimal | None:
    """Record one LLM call's usage on the current span and in metrics; returns its cost in USD (exact).

    Unknown models (not in the price table) are reported once and leave ``cost.usd`` unset: None is returned.
    Bad input (negative or non-integer token counts, an empty model) is logged and nothing is recorded.
    """
    try:
        if not isinstance(model, str) or not model:
            report_once(
                f"record_llm_usage:model:{model!r}",
                "otel_metrics: record_llm_usage model must be a non-empty str, got %r; usage not recorded",
                model,
            )
            return None
        n_in = _tokens(input_tokens, "input_tokens")
        n_out = _tokens(output_tokens, "output_tokens")
        n_cached = _tokens(cached_input_tokens, "cached_input_tokens")
        if n_in is None or n_out is None or n_cached is None:
            return None
        cost = STATE.price_table.llm_cost(model, n_in, n_out, n_cached, provider=provider)
        base: dict[str, Any] = {REQUEST_MODEL: model, OPERATION_NAME: str(operation)}
        if provider:
            base[PROVIDER_NAME] = str(provider)
        span = trace_api.get_current_span()
        if span.is_recording():
            span.set_attributes(base)
            span.set_attributes({INPUT_TOKENS: n_in, OUTPUT_TOKENS: n_out})
            if n_cached:
                span.set_attribute(CACHED_INPUT_TOKENS, n_cached)
            if cost is not None:
                _add_span_cost(span, cost)
        dims = metric_dimensions_from_context()
        inst = STATE.instruments()
        metric_attrs = {**base, **dims}
        inst.token_usage.record(n_in, {**metric_attrs, TOKEN_TYPE: "input"})
        inst.token_usage.record(n_out, {**metric_attrs, TOKEN_TYPE: "output"})
        if cost is not None:
            cost_attrs = {COST_CATEGORY: CATEGORY_LLM, REQUEST_MODEL: model, **dims}
            if provider:
                cost_attrs[PROVIDER_NAME] = str(provider)
            inst.cost.add(float(cost), cost_attrs)
        return cost
    except Exception:
        internal_error("record_llm_usage")
        return None


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

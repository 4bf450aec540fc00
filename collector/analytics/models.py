"""Typed results of every analytics query: what the CLI renders and the HTTP API serialises.

Every field is a plain scalar (str, int, float, bool, datetime, or None) so rows render as table columns, CSV
and JSON alike; ``collector.analytics.openapi`` derives the API's schemas from these classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "AgentStats",
    "Alert",
    "BudgetStatus",
    "BusinessValue",
    "CorrelationCost",
    "CostProjection",
    "CostRow",
    "Insight",
    "OperationPerformance",
    "Outlier",
    "PercentileSummary",
    "Recommendation",
    "RequestCost",
    "ServiceHealth",
    "Summary",
    "TimeBucket",
    "Trend",
    "UnpricedModel",
    "UsagePoint",
    "UserActivity",
    "to_jsonable",
]


@dataclass(frozen=True)
class OperationPerformance:
    service: str
    operation: str
    calls: int
    errors: int
    success_rate: float
    error_rate: float
    avg_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float
    slow: int
    very_slow: int
    exact: bool  # False: percentiles and slow counts from rollup histograms (< 1 % error)


@dataclass(frozen=True)
class TimeBucket:
    bucket: datetime
    operations: int
    successes: int
    failures: int
    success_rate: float
    avg_ms: float
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    quality_avg: float | None


@dataclass(frozen=True)
class AgentStats:
    agent: str
    tasks: int
    successes: int
    success_rate: float
    avg_ms: float
    median_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    quality_avg: float | None
    quality_median: float | None
    quality_min: float | None
    quality_max: float | None
    budget_usd: float | None
    budget_remaining_usd: float | None
    budget_utilization: float | None


@dataclass(frozen=True)
class UserActivity:
    user: str
    requests: int
    successes: int
    avg_ms: float
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class UsagePoint:
    """One row of a usage breakdown: most used operations, or requests per hour of day."""

    key: str
    count: int


@dataclass(frozen=True)
class PercentileSummary:
    field: str
    count: int
    mean: float | None
    median: float | None
    std: float | None
    min: float | None
    max: float | None
    p50: float | None
    p75: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    exact: bool

    @classmethod
    def of(
        cls,
        field: str,
        count: int,
        pct: Sequence[float | None],
        *,
        mean: float | None,
        std: float | None,
        min: float | None,
        max: float | None,
        exact: bool,
    ) -> PercentileSummary:
        """From the quantiles 0.5, 0.75, 0.9, 0.95 and 0.99, in that order (the median is the first)."""
        p50, p75, p90, p95, p99 = pct
        return cls(field, count, mean, p50, std, min, max, p50, p75, p90, p95, p99, exact)


@dataclass(frozen=True)
class Trend:
    metric: str
    points: int
    slope: float | None  # per granularity step (e.g. per day)
    intercept: float | None
    r_squared: float | None
    p_value: float | None
    first: float | None
    last: float | None
    verdict: str  # improving | degrading | stable | insufficient_data


@dataclass(frozen=True)
class Outlier:
    service: str
    operation: str
    trace_id: str
    span_id: str
    correlation_id: str | None
    start_time: datetime
    value: float
    mean: float
    std: float
    z_score: float


@dataclass(frozen=True)
class CostRow:
    key: str
    calls: int
    successes: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_success: float | None
    share: float
    # Head-sampled spans contributed: calls, tokens and cost estimate the whole, each span weighing its adjusted
    # count (1 / its sampling probability; docs/schema.md, Sampled spans).
    estimated: bool = False
    # Spans of this key folded into another span of the same LLM call (same gen_ai.response.id: an SDK's tracing
    # and an instrumentation, a framework span repeating its child, or the same response exported by two
    # processes): counted in calls, adding no tokens or cost.
    folded_spans: int = 0


@dataclass(frozen=True)
class UnpricedModel:
    """LLM spans of one provider and model with tokens but no cost: what the cost totals do not include."""

    provider: str | None
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    first_seen: datetime
    last_seen: datetime
    priced_now: bool | None  # whether the current price table knows the model; None: not checked


@dataclass(frozen=True)
class CostProjection:
    month_start: datetime
    month_to_date_usd: float
    daily_burn_usd: float  # average over the burn window
    burn_window_days: int
    days_remaining: float
    projected_month_usd: float


@dataclass(frozen=True)
class RequestCost:
    """Cost per request in a window (docs/analytics.md, Statistics: cost per request)."""

    # "trace": requests are traces (root spans), each counted once whatever services it entered; "entry": requests
    # into the filtered service or operation (its root and SERVER spans), which that service's cost is divided by.
    basis: str
    requests: int | None  # None: the window holds rollups written before migration 0030, which counted no roots
    cost_usd: float
    cost_per_request: float | None  # None: no request, or requests unknown
    # Head-sampled spans contributed: requests and cost estimate the whole (docs/schema.md, Sampled spans).
    estimated: bool


@dataclass(frozen=True)
class CorrelationCost:
    correlation_id: str
    spans: int
    services: str  # comma-separated, sorted
    cost_usd: float
    input_tokens: int
    output_tokens: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class BudgetStatus:
    scope: str
    name: str
    period: str
    amount_usd: float
    spent_usd: float
    remaining_usd: float
    utilization: float
    warning_ratio: float
    critical_ratio: float
    status: str  # ok | warning | critical
    period_start: datetime


@dataclass(frozen=True)
class Recommendation:
    kind: str  # reduce_budget | pause | increase_capacity | review
    scope: str
    name: str
    reason: str
    estimated_saving_usd: float


@dataclass(frozen=True)
class Insight:
    kind: str  # fastest_agent | most_cost_efficient | highest_quality | peak_hour | degrading_operation
    subject: str
    detail: str
    value: float | None


@dataclass(frozen=True)
class BusinessValue:
    tasks: int
    minutes_saved_per_task: float
    hourly_rate_usd: float
    hours_saved: float
    savings_usd: float
    cost_usd: float
    net_value_usd: float
    roi: float | None  # (savings - cost) / cost


@dataclass(frozen=True)
class Alert:
    id: int
    fingerprint: str
    rule: str
    severity: str  # warning | critical
    status: str  # active | acknowledged | resolved
    scope: str
    metric: str
    value: float | None
    threshold: float | None
    message: str
    first_seen: datetime
    last_seen: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    occurrences: int


@dataclass(frozen=True)
class ServiceHealth:
    service: str
    status: str  # healthy | degraded | no_data
    calls: int
    error_rate: float | None
    p95_ms: float | None
    active_alerts: int


@dataclass(frozen=True)
class Summary:
    status: str  # healthy | degraded | no_data
    calls_24h: int
    error_rate_24h: float | None
    avg_ms_24h: float | None
    p95_ms_24h: float | None
    cost_24h_usd: float
    calls_30d: int
    error_rate_30d: float | None
    cost_30d_usd: float
    active_alerts: int
    critical_alerts: int
    pending_recommendations: int


def _value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def to_jsonable(obj: Any) -> Any:
    """A result (dataclass, list of them, dict) as JSON-ready values; datetimes in ISO 8601."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return _value(obj)

"""Answers composed from several queries: insights, recommendations, business value and an alert round.

The CLI, the HTTP API and the ``analytics`` extension all call these and nothing else for them, so the three faces
cannot drift apart: the same window, filters and config give the same answer (and an alert round records and
delivers the same way) whichever face asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import advice
from .alerts import AlertStore, Firing, deliver_webhook, evaluate
from .budgets import BudgetStore, agent_budget_map
from .config import AlertRuleConfig, AnalyticsConfig, WebhookConfig
from .models import Alert, BusinessValue, Insight, Recommendation, Trend
from .queries import Analytics, Thresholds
from .trends import trend_of, trend_points
from .window import NO_FILTERS, Filters, TimeWindow

__all__ = [
    "ADVICE_LOOKBACK",
    "INSIGHTS_LOOKBACK",
    "AlertRound",
    "alert_rules",
    "business_value",
    "deliver_alert_round",
    "insights",
    "operation_trends",
    "recommendations",
    "record_alert_round",
    "thresholds_of",
]

# Default windows when a face is given none: insights look for day-over-day trends over a week; recommendations
# and business value judge a month of agent work (and the summary counts the same month's recommendations).
INSIGHTS_LOOKBACK = timedelta(days=7)
ADVICE_LOOKBACK = timedelta(days=30)
# Business value counts successes over every service; this bounds the per-service rows read for it.
_MAX_SERVICES = 10_000


def thresholds_of(config: AnalyticsConfig | None) -> Thresholds:
    """The slow / very slow thresholds (ms) of the ``analytics`` config, or the defaults without one."""
    t = (config or AnalyticsConfig()).thresholds
    return Thresholds(t.slow * 1000.0, t.very_slow * 1000.0)


def operation_trends(a: Analytics, window: TimeWindow, filters: Filters = NO_FILTERS) -> dict[tuple[str, str], Trend]:
    """Per (service, operation): the day-over-day trend of its average duration."""
    out = {}
    for key, series in a.operation_series(window, filters, "day").items():
        xs, ys = trend_points(series, window.start, "day", "avg_ms")
        out[key] = trend_of("avg_ms", xs, ys)
    return out


def insights(a: Analytics, window: TimeWindow, filters: Filters = NO_FILTERS) -> list[Insight]:
    """Fastest agent per operation, most cost-efficient and highest-quality agents, peak hours, degrading
    operations."""
    return advice.insights(
        a.agent_operations(window, filters), a.hourly_pattern(window, filters), operation_trends(a, window, filters)
    )


def recommendations(
    a: Analytics, window: TimeWindow, filters: Filters = NO_FILTERS, now: datetime | None = None
) -> list[Recommendation]:
    """Budget and agent recommendations: agents judged over ``window``, budgets over their current period."""
    now = now or datetime.now(UTC)
    budgets = BudgetStore(a.conn).status(now)
    agents = a.agents(window, filters, budgets=agent_budget_map(budgets))
    return advice.recommendations(agents, budgets, now)


def business_value(
    a: Analytics, window: TimeWindow, filters: Filters, minutes_saved: float, hourly_rate: float
) -> BusinessValue:
    """Savings and ROI of the window's successful calls against the caller's baseline."""
    perf = a.performance(window, filters, group_by="service", limit=_MAX_SERVICES)
    tasks = sum(p.calls - p.errors for p in perf)
    return advice.business_value(tasks, a.total_cost(window, filters), minutes_saved, hourly_rate)


def alert_rules(config: AnalyticsConfig | None) -> list[AlertRuleConfig]:
    """The rules an alert round evaluates: the config's ``alerts::rules`` as written (an empty list means none),
    the default rules when there is no ``analytics`` config at all."""
    return list((config or AnalyticsConfig()).alerts.rules)


@dataclass(frozen=True)
class AlertRound:
    firings: list[Firing]
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def record_alert_round(a: Analytics, rules: Sequence[AlertRuleConfig], now: datetime | None = None) -> AlertRound:
    """Evaluate every rule and record the result (open, update, resolve); blocking."""
    firings = evaluate(a, rules, now)
    opened, resolved = AlertStore(a.conn).apply(firings, [r.name for r in rules], now)
    return AlertRound(firings, opened, resolved)


async def deliver_alert_round(round_: AlertRound, webhook: WebhookConfig) -> bool:
    """Send what the round opened and resolved to the webhook, if one is configured and there is news; True when
    it was delivered. Never raises (the alerts are stored either way)."""
    return await deliver_webhook(webhook, round_.opened, round_.resolved)

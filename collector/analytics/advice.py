"""Recommendations, insights and business value: pure functions over query results (no SQL here)."""

from __future__ import annotations

import statistics as _pystats
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .budgets import period_bounds
from .models import AgentStats, BudgetStatus, BusinessValue, Insight, Recommendation, Trend, UsagePoint

__all__ = [
    "HIGH_QUALITY",
    "HIGH_SUCCESS_RATE",
    "LOW_QUALITY",
    "LOW_UTILIZATION",
    "RARELY_USED_TASKS",
    "business_value",
    "insights",
    "recommendations",
]

# reduce_budget: projected end-of-period utilization below this (judged once a quarter of the period has passed)
LOW_UTILIZATION = 0.5
MIN_ELAPSED_FRACTION = 0.25
BUDGET_HEADROOM = 1.2  # suggested budget = projected spend x this
# pause: fewer tasks than this in the report window
RARELY_USED_TASKS = 10
# increase_capacity: quality and success at least these, budget utilization below HEADROOM_UTILIZATION
HIGH_QUALITY = 0.85
HIGH_SUCCESS_RATE = 0.95
HEADROOM_UTILIZATION = 0.7
# review: cost per task at least EXPENSIVE_FACTOR x the median agent's, quality below LOW_QUALITY
EXPENSIVE_FACTOR = 2.0
LOW_QUALITY = 0.7
PEAK_HOURS = 3


def recommendations(
    agents: Sequence[AgentStats], budgets: Sequence[BudgetStatus], now: datetime
) -> list[Recommendation]:
    out: list[Recommendation] = []
    for b in budgets:
        start, end = period_bounds(b.period, now)
        elapsed = (now - start) / (end - start)
        if b.amount_usd <= 0 or elapsed < MIN_ELAPSED_FRACTION:
            continue
        projected = b.spent_usd / elapsed
        if projected / b.amount_usd < LOW_UTILIZATION:
            suggested = round(projected * BUDGET_HEADROOM, 2)
            out.append(
                Recommendation(
                    "reduce_budget",
                    b.scope,
                    b.name,
                    f"projected {b.period} spend ${projected:.2f} is {projected / b.amount_usd:.0%} of the "
                    f"${b.amount_usd:.2f} budget; suggest ${suggested:.2f}",
                    round(b.amount_usd - suggested, 2),
                )
            )
    per_task = [a.cost_usd / a.tasks for a in agents if a.tasks]
    median_cost = _pystats.median(per_task) if per_task else 0.0
    for a in agents:
        if a.tasks < RARELY_USED_TASKS:
            saving = a.budget_usd if a.budget_usd is not None else a.cost_usd
            out.append(
                Recommendation(
                    "pause",
                    "agent",
                    a.agent,
                    f"only {a.tasks} task(s) in the window (< {RARELY_USED_TASKS})",
                    round(saving, 2),
                )
            )
            continue
        quality = a.quality_avg
        if (
            quality is not None
            and quality >= HIGH_QUALITY
            and a.success_rate >= HIGH_SUCCESS_RATE
            and (a.budget_utilization is None or a.budget_utilization < HEADROOM_UTILIZATION)
        ):
            out.append(
                Recommendation(
                    "increase_capacity",
                    "agent",
                    a.agent,
                    f"quality {quality:.2f} and success {a.success_rate:.0%} with budget headroom",
                    0.0,
                )
            )
        cost_per_task = a.cost_usd / a.tasks
        if (
            median_cost > 0
            and cost_per_task >= EXPENSIVE_FACTOR * median_cost
            and quality is not None
            and quality < LOW_QUALITY
        ):
            out.append(
                Recommendation(
                    "review",
                    "agent",
                    a.agent,
                    f"cost per task ${cost_per_task:.4f} is {cost_per_task / median_cost:.1f}x the median with "
                    f"quality {quality:.2f}",
                    round(a.cost_usd - a.tasks * median_cost, 2),
                )
            )
    return out


def insights(
    agent_operations: Sequence[Mapping[str, Any]],
    hourly: Sequence[UsagePoint],
    operation_trends: Mapping[tuple[str, str], Trend],
) -> list[Insight]:
    out: list[Insight] = []
    by_operation: dict[str, list[Mapping[str, Any]]] = {}
    for row in agent_operations:
        by_operation.setdefault(row["operation"], []).append(row)
    for operation in sorted(by_operation):
        rows = [r for r in by_operation[operation] if r["calls"]]
        if len(rows) < 2:
            continue
        best = min(rows, key=lambda r: (r["avg_ms"], r["agent"]))
        out.append(
            Insight(
                "fastest_agent",
                f"{operation}: {best['agent']}",
                f"{best['agent']} averages {best['avg_ms']:.1f} ms on {operation}",
                best["avg_ms"],
            )
        )
    totals: dict[str, dict[str, float]] = {}
    for row in agent_operations:
        t = totals.setdefault(row["agent"], {"successes": 0.0, "cost": 0.0, "qsum": 0.0, "qcalls": 0.0})
        t["successes"] += row["successes"]
        t["cost"] += row["cost_usd"]
        if row["quality_avg"] is not None:
            t["qsum"] += row["quality_avg"] * row["calls"]
            t["qcalls"] += row["calls"]
    efficient = [(t["cost"] / t["successes"], a) for a, t in totals.items() if t["successes"] and t["cost"] > 0]
    if efficient:
        value, agent = min(efficient)
        out.append(Insight("most_cost_efficient", agent, f"{agent}: ${value:.6f} per successful task", value))
    quality = [(t["qsum"] / t["qcalls"], a) for a, t in totals.items() if t["qcalls"]]
    if quality:
        value, agent = max(quality, key=lambda x: (x[0], [-ord(c) for c in x[1]]))
        out.append(Insight("highest_quality", agent, f"{agent}: average quality {value:.3f}", value))
    busiest = sorted((p for p in hourly if p.count), key=lambda p: (-p.count, p.key))[:PEAK_HOURS]
    for point in busiest:
        out.append(Insight("peak_hour", f"{point.key}:00 UTC", f"{point.count} calls", float(point.count)))
    for (service, operation), trend in sorted(operation_trends.items()):
        if trend.verdict == "degrading":
            out.append(
                Insight(
                    "degrading_operation",
                    f"{service}/{operation}",
                    f"{trend.metric} rises {trend.slope:.2f} per step (r²={trend.r_squared:.2f}, "
                    f"p={trend.p_value:.3g})",
                    trend.slope,
                )
            )
    return out


def business_value(tasks: int, cost_usd: float, minutes_saved_per_task: float, hourly_rate_usd: float) -> BusinessValue:
    """Time saved x rate -> savings; ROI = (savings - cost) / cost against the user's baseline."""
    if minutes_saved_per_task < 0 or hourly_rate_usd < 0:
        raise ValueError("minutes_saved_per_task and hourly_rate_usd must be >= 0")
    hours = tasks * minutes_saved_per_task / 60.0
    savings = hours * hourly_rate_usd
    roi = (savings - cost_usd) / cost_usd if cost_usd > 0 else None
    return BusinessValue(
        tasks, minutes_saved_per_task, hourly_rate_usd, hours, savings, cost_usd, savings - cost_usd, roi
    )

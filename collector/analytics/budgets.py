"""Spending budgets per agent, tenant or model and period (table ``budgets``, migration 0010).

Spend in the current period (UTC day, ISO week from Monday, calendar month) is read from ``span_rollups_1h``
by the matching rollup dimension, so it needs that dimension in the sink's ``rollup_dimensions`` (the default).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from .models import BudgetStatus

__all__ = [
    "DEFAULT_CRITICAL_RATIO",
    "DEFAULT_WARNING_RATIO",
    "PERIODS",
    "SCOPES",
    "Budget",
    "BudgetStore",
    "agent_budget_map",
    "budget_state",
    "period_bounds",
]

DEFAULT_WARNING_RATIO = 0.8
DEFAULT_CRITICAL_RATIO = 1.0
# scope -> rollup dimension column
SCOPES = {"agent": "agent_name", "tenant": "tenant_id", "model": "model"}
PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Budget:
    scope: str
    name: str
    period: str
    amount_usd: float
    warning_ratio: float = DEFAULT_WARNING_RATIO
    critical_ratio: float = DEFAULT_CRITICAL_RATIO

    def validate(self) -> list[str]:
        errors = []
        if self.scope not in SCOPES:
            errors.append(f"scope: expected one of {', '.join(SCOPES)}, got {self.scope!r}")
        if not self.name:
            errors.append("name: must not be empty")
        if self.period not in PERIODS:
            errors.append(f"period: expected one of {', '.join(PERIODS)}, got {self.period!r}")
        if not self.amount_usd >= 0:
            errors.append(f"amount_usd: must be >= 0, got {self.amount_usd}")
        if not 0 < self.warning_ratio <= self.critical_ratio:
            errors.append(
                f"warning_ratio/critical_ratio: expected 0 < warning <= critical, got {self.warning_ratio} and "
                f"{self.critical_ratio}"
            )
        return errors


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the UTC period containing ``now``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    raise ValueError(f"period: expected one of {', '.join(PERIODS)}, got {period!r}")


def budget_state(utilization: float, warning_ratio: float, critical_ratio: float) -> str:
    if utilization >= critical_ratio:
        return "critical"
    if utilization >= warning_ratio:
        return "warning"
    return "ok"


class BudgetStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def set(self, budget: Budget) -> None:
        errors = budget.validate()
        if errors:
            raise ValueError("; ".join(errors))
        self.conn.execute(
            "INSERT INTO budgets (scope, name, period, amount_usd, warning_ratio, critical_ratio)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (scope, name, period) DO UPDATE SET amount_usd = excluded.amount_usd,"
            " warning_ratio = excluded.warning_ratio, critical_ratio = excluded.critical_ratio, updated_at = now()",
            (budget.scope, budget.name, budget.period, budget.amount_usd, budget.warning_ratio, budget.critical_ratio),
        )

    def delete(self, scope: str, name: str, period: str) -> bool:
        cur = self.conn.execute(
            "DELETE FROM budgets WHERE scope = %s AND name = %s AND period = %s", (scope, name, period)
        )
        return cur.rowcount > 0

    def list(self) -> list[Budget]:
        rows = self.conn.execute(
            "SELECT scope, name, period, amount_usd::float8, warning_ratio, critical_ratio FROM budgets"
            " ORDER BY scope, name, period"
        ).fetchall()
        return [Budget(*row) for row in rows]

    def status(self, now: datetime | None = None) -> builtins.list[BudgetStatus]:
        """Every budget's spend in its current period, utilization and ok/warning/critical."""
        now = now or datetime.now(UTC)
        budgets = self.list()
        spend: dict[tuple[str, str], dict[str, float]] = {}
        out = []
        for b in budgets:
            start, _ = period_bounds(b.period, now)
            key = (b.scope, b.period)
            if key not in spend:
                column = SCOPES[b.scope]  # from a fixed map
                # plus span_rollups_unsampled_1h: what head-sampled spans stand for (estimate.py)
                rows = self.conn.execute(
                    f"SELECT d, sum(c)::float8 FROM (SELECT {column} AS d, cost_usd AS c FROM span_rollups_1h"
                    " WHERE bucket_start >= %s AND bucket_start < %s UNION ALL"
                    f" SELECT {column}, cost_usd FROM span_rollups_unsampled_1h"
                    " WHERE bucket_start >= %s AND bucket_start < %s) AS r GROUP BY 1",
                    (start, now, start, now),
                ).fetchall()
                spend[key] = {r[0]: float(r[1]) for r in rows}
            spent = spend[key].get(b.name, 0.0)
            utilization = spent / b.amount_usd if b.amount_usd else (0.0 if spent == 0 else float("inf"))
            out.append(
                BudgetStatus(
                    scope=b.scope,
                    name=b.name,
                    period=b.period,
                    amount_usd=b.amount_usd,
                    spent_usd=spent,
                    remaining_usd=b.amount_usd - spent,
                    utilization=utilization,
                    warning_ratio=b.warning_ratio,
                    critical_ratio=b.critical_ratio,
                    status=budget_state(utilization, b.warning_ratio, b.critical_ratio),
                    period_start=start,
                )
            )
        return out


def agent_budget_map(statuses: list[BudgetStatus]) -> dict[str, tuple[float, float]]:
    """agent -> (allocated, spent) for AgentStats; with several periods for one agent, the most utilised."""
    out: dict[str, tuple[float, float]] = {}
    best: dict[str, float] = {}
    for s in statuses:
        if s.scope == "agent" and s.utilization >= best.get(s.name, -1.0):
            best[s.name] = s.utilization
            out[s.name] = (s.amount_usd, s.spent_usd)
    return out

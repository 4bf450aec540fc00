"""Alert rules evaluated over the sink, stored with a lifecycle (active -> acknowledged -> resolved).

One open alert per fingerprint (rule + scope): a rule that keeps firing updates its alert (last_seen, value,
occurrences); a rule evaluated without firing for that scope resolves it. A firing after resolution opens a new
alert. Webhook delivery (JSON POST) is fire-and-forget: failures are logged, never raised.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from . import statistics as stats
from .budgets import BudgetStore
from .config import AlertRuleConfig, WebhookConfig
from .models import Alert, OperationPerformance, to_jsonable
from .queries import Analytics
from .window import Filters, TimeWindow

__all__ = ["ALERT_STATUSES", "AlertStore", "Firing", "deliver_webhook", "evaluate", "fingerprint"]

_LOGGER = logging.getLogger("otel_metrics.analytics")
ALERT_STATUSES = ("active", "acknowledged", "resolved")
MIN_BASELINE_POINTS = 6
_COLUMNS = (
    "id, fingerprint, rule, severity, status, scope, metric, value, threshold, message, first_seen, last_seen,"
    " acknowledged_at, resolved_at, occurrences"
)


def fingerprint(rule: str, scope: str) -> str:
    return hashlib.sha256(f"{rule}\x00{scope}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Firing:
    rule: str
    severity: str
    scope: str
    metric: str
    value: float
    threshold: float | None
    message: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.scope)


def _scope(service: str, operation: str | None) -> str:
    return f"service={service}" if operation in (None, "*") else f"service={service},operation={operation}"


def _operation_firing(
    rule: AlertRuleConfig, perf: OperationPerformance, value: float, threshold: float, detail: str
) -> Firing:
    """``rule`` firing for one service (or operation) of ``performance``; the message is its scope, then ``detail``."""
    scope = _scope(perf.service, perf.operation)
    return Firing(rule.name, rule.severity, scope, rule.metric, value, threshold, f"{scope}: {detail}")


def _evaluate_rule(analytics: Analytics, rule: AlertRuleConfig, now: datetime) -> list[Firing]:
    window = TimeWindow(now - timedelta(seconds=rule.window), now)
    filters = Filters(service=rule.service, operation=rule.operation)
    if rule.metric == "budget_utilization":
        out = []
        for b in BudgetStore(analytics.conn).status(now):
            if b.status == "ok":
                continue
            threshold = b.critical_ratio if b.status == "critical" else b.warning_ratio
            out.append(
                Firing(
                    rule.name,
                    b.status,
                    f"budget={b.scope}/{b.name}/{b.period}",
                    rule.metric,
                    b.utilization,
                    threshold,
                    f"{b.scope} {b.name!r} spent ${b.spent_usd:.2f} of ${b.amount_usd:.2f} this "
                    f"{b.period} ({b.utilization:.0%})",
                )
            )
        return out
    if rule.metric == "anomaly_avg_ms":
        return _anomalies(analytics, rule, window, filters, now)
    out = []
    for perf in analytics.performance(window, filters, group_by=rule.group_by, limit=10_000):
        if perf.calls < rule.min_calls:
            continue
        value = {"avg_ms": perf.avg_ms, "p95_ms": perf.p95_ms, "error_rate": perf.error_rate}[rule.metric]
        assert rule.threshold is not None  # validated
        if value is None or value <= rule.threshold:
            continue
        detail = f"{rule.metric} {value:.4g} > {rule.threshold:.4g} over the last {rule.window:g}s ({perf.calls} calls)"
        out.append(_operation_firing(rule, perf, value, rule.threshold, detail))
    return out


def _anomalies(
    analytics: Analytics, rule: AlertRuleConfig, window: TimeWindow, filters: Filters, now: datetime
) -> list[Firing]:
    """Current average duration against the hourly averages of the baseline before the window."""
    baseline = TimeWindow(now - timedelta(seconds=rule.baseline), window.start)
    history = analytics.operation_series(baseline, filters, "hour")
    out = []
    for perf in analytics.performance(window, filters, limit=10_000):
        if perf.calls < rule.min_calls:
            continue
        points = [b.avg_ms for b in history.get((perf.service, perf.operation), []) if b.operations]
        if len(points) < MIN_BASELINE_POINTS:
            continue
        mean, std = stats.mean(points), stats.std(points)
        if mean is None or not std:
            continue
        z = (perf.avg_ms - mean) / std
        if z < rule.z_threshold:
            continue
        detail = (
            f"avg {perf.avg_ms:.1f} ms is {z:.1f} standard deviations above the baseline {mean:.1f} ms "
            f"(std {std:.1f} ms, {len(points)} hours)"
        )
        out.append(_operation_firing(rule, perf, perf.avg_ms, mean + rule.z_threshold * std, detail))
    return out


def evaluate(analytics: Analytics, rules: Sequence[AlertRuleConfig], now: datetime | None = None) -> list[Firing]:
    now = now or datetime.now(UTC)
    firings: list[Firing] = []
    for rule in rules:
        firings += _evaluate_rule(analytics, rule, now)
    return firings


class AlertStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def _alerts(self, query: str, params: Sequence[Any]) -> builtins.list[Alert]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return [Alert(**row) for row in cur.fetchall()]

    def apply(
        self, firings: Sequence[Firing], evaluated_rules: Sequence[str], now: datetime | None = None
    ) -> tuple[builtins.list[Alert], builtins.list[Alert]]:
        """Record this round: open or update an alert per firing; resolve open alerts of the evaluated rules that
        did not fire. Returns (newly opened, newly resolved)."""
        now = now or datetime.now(UTC)
        opened: builtins.list[Alert] = []
        with self.conn.transaction():
            for f in firings:
                with self.conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(
                        "INSERT INTO alerts (fingerprint, rule, severity, scope, metric, value, threshold, message,"
                        " first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (fingerprint) WHERE status <> 'resolved' DO UPDATE SET"
                        " severity = excluded.severity, value = excluded.value, threshold = excluded.threshold,"
                        " message = excluded.message, last_seen = excluded.last_seen,"
                        " occurrences = alerts.occurrences + 1"
                        f" RETURNING {_COLUMNS}, (xmax = 0) AS inserted",
                        (
                            f.fingerprint,
                            f.rule,
                            f.severity,
                            f.scope,
                            f.metric,
                            f.value,
                            f.threshold,
                            f.message,
                            now,
                            now,
                        ),
                    )
                    row = cur.fetchone()
                assert row is not None
                if row.pop("inserted"):
                    opened.append(Alert(**row))
            resolved = self._alerts(
                f"UPDATE alerts SET status = 'resolved', resolved_at = %s WHERE status <> 'resolved'"
                f" AND rule = ANY(%s) AND NOT (fingerprint = ANY(%s)) RETURNING {_COLUMNS}",
                (now, list(evaluated_rules), [f.fingerprint for f in firings]),
            )
        return opened, resolved

    def list(self, status: str | None = None, *, limit: int = 100, offset: int = 0) -> list[Alert]:
        if status is not None and status not in (*ALERT_STATUSES, "open"):
            raise ValueError(f"status: expected one of {', '.join(ALERT_STATUSES)} or open, got {status!r}")
        params: builtins.list[Any] = []
        if status is None:
            where = "TRUE"
        elif status == "open":
            where = "status <> 'resolved'"
        else:
            where, params = "status = %s", [status]
        return self._alerts(
            f"SELECT {_COLUMNS} FROM alerts WHERE {where} ORDER BY last_seen DESC, id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )

    def get(self, alert_id: int) -> Alert | None:
        found = self._alerts(f"SELECT {_COLUMNS} FROM alerts WHERE id = %s", [alert_id])
        return found[0] if found else None

    def acknowledge(self, alert_id: int, by: str | None = None, now: datetime | None = None) -> Alert | None:
        """active -> acknowledged; None when there is no active alert with that id."""
        found = self._alerts(
            f"UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s"
            f" WHERE id = %s AND status = 'active' RETURNING {_COLUMNS}",
            [now or datetime.now(UTC), by, alert_id],
        )
        return found[0] if found else None

    def resolve(self, alert_id: int, now: datetime | None = None) -> Alert | None:
        """active or acknowledged -> resolved; None when there is no open alert with that id."""
        found = self._alerts(
            f"UPDATE alerts SET status = 'resolved', resolved_at = %s WHERE id = %s AND status <> 'resolved'"
            f" RETURNING {_COLUMNS}",
            [now or datetime.now(UTC), alert_id],
        )
        return found[0] if found else None

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, severity, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY 1, 2"
        ).fetchall()
        out = {"active": 0, "acknowledged": 0, "critical": 0}
        for status, severity, n in rows:
            out[status] += int(n)
            if severity == "critical":
                out["critical"] += int(n)
        return out


async def deliver_webhook(config: WebhookConfig, opened: Sequence[Alert], resolved: Sequence[Alert]) -> bool:
    """POST ``{"opened": [...], "resolved": [...]}``; True on a 2xx answer. Never raises."""
    if not config.url or not (opened or resolved):
        return False
    payload = {"opened": to_jsonable(list(opened)), "resolved": to_jsonable(list(resolved))}
    try:
        async with httpx.AsyncClient(timeout=config.timeout) as client:
            response = await client.post(config.url, json=payload, headers=config.headers)
        if response.is_success:
            return True
        _LOGGER.warning("analytics: alert webhook %s answered %s", origin_of(config.url), response.status_code)
    except Exception as exc:  # delivery is best effort; the alert is stored either way
        # Only the exception's type: its text may quote the URL, whose path or query is often the secret.
        _LOGGER.warning("analytics: alert webhook %s failed: %s", origin_of(config.url), type(exc).__name__)
    return False


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a log may say about a webhook without its secret parts."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{host}{port}"

"""The status summary: per-service health (healthy / degraded / no_data) and the headline numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from . import compose
from .alerts import AlertStore
from .models import ServiceHealth, Summary
from .queries import Analytics
from .window import TimeWindow

__all__ = ["DEFAULT_ERROR_RATE_DEGRADED", "HEALTH_WINDOW", "overall_status", "service_health", "summary"]

HEALTH_WINDOW = timedelta(hours=1)
DEFAULT_ERROR_RATE_DEGRADED = 0.05


def service_health(
    analytics: Analytics, now: datetime | None = None, window: timedelta = HEALTH_WINDOW
) -> list[ServiceHealth]:
    """Every known service: no_data without calls in the window; degraded with an open alert on it or an
    error rate above 5 %; healthy otherwise."""
    now = now or datetime.now(UTC)
    perf = {p.service: p for p in analytics.performance(TimeWindow(now - window, now), group_by="service")}
    open_alerts: dict[str, int] = {}
    for alert in AlertStore(analytics.conn).list("open", limit=10_000):
        if alert.scope.startswith("service="):
            service = alert.scope.split(",", 1)[0][len("service=") :]
            open_alerts[service] = open_alerts.get(service, 0) + 1
    out = []
    for service in sorted(set(analytics.services()) | set(perf)):
        p = perf.get(service)
        alerts = open_alerts.get(service, 0)
        if p is None or p.calls == 0:
            status = "no_data"
        elif alerts or p.error_rate > DEFAULT_ERROR_RATE_DEGRADED:
            status = "degraded"
        else:
            status = "healthy"
        out.append(
            ServiceHealth(
                service, status, p.calls if p else 0, p.error_rate if p else None, p.p95_ms if p else None, alerts
            )
        )
    return out


def overall_status(services: list[ServiceHealth]) -> str:
    if not services or all(s.status == "no_data" for s in services):
        return "no_data"
    return "degraded" if any(s.status == "degraded" for s in services) else "healthy"


def summary(analytics: Analytics, now: datetime | None = None) -> Summary:
    """Last 24 h, last 30 days, open alerts, pending recommendations and the overall status."""
    now = now or datetime.now(UTC)
    day = analytics.performance(TimeWindow(now - timedelta(hours=24), now), group_by="service")
    month = analytics.performance(TimeWindow(now - timedelta(days=30), now), group_by="service")
    calls_24h = sum(p.calls for p in day)
    errors_24h = sum(p.errors for p in day)
    calls_30d = sum(p.calls for p in month)
    errors_30d = sum(p.errors for p in month)
    avg_24h = sum(p.avg_ms * p.calls for p in day) / calls_24h if calls_24h else None
    p95_24h = analytics.percentiles(TimeWindow(now - timedelta(hours=24), now)).p95 if calls_24h else None
    counts = AlertStore(analytics.conn).counts()
    pending = compose.recommendations(analytics, TimeWindow(now - compose.ADVICE_LOOKBACK, now), now=now)
    return Summary(
        status=overall_status(service_health(analytics, now)),
        calls_24h=calls_24h,
        error_rate_24h=errors_24h / calls_24h if calls_24h else None,
        avg_ms_24h=avg_24h,
        p95_ms_24h=p95_24h,
        cost_24h_usd=analytics.total_cost(TimeWindow(now - timedelta(hours=24), now)),
        calls_30d=calls_30d,
        error_rate_30d=errors_30d / calls_30d if calls_30d else None,
        cost_30d_usd=analytics.total_cost(TimeWindow(now - timedelta(days=30), now)),
        active_alerts=counts["active"] + counts["acknowledged"],
        critical_alerts=counts["critical"],
        pending_recommendations=len(pending),
    )

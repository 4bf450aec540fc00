"""Budgets, alert rules and their lifecycle, webhook delivery, recommendations, insights, summary — on a real
PostgreSQL with spans loaded through the sink's writer."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.analytics import advice
from collector.analytics.alerts import AlertStore, Firing, deliver_webhook, evaluate
from collector.analytics.budgets import Budget, BudgetStore, period_bounds
from collector.analytics.config import AlertRuleConfig, AnalyticsConfig, WebhookConfig, default_rules
from collector.analytics.models import AgentStats, BudgetStatus, Trend, UsagePoint
from collector.analytics.queries import Analytics
from collector.analytics.summary import overall_status, service_health, summary
from collector.confighttp import HTTPServer
from processors.pipeline import Duration
from tests.collector.analytics import analytics_data

END = analytics_data.END
NOW = END - timedelta(minutes=1)  # Thursday 2026-11-19 23:59 UTC


@pytest.fixture
def small(pg_dsn: str) -> Iterator[tuple[psycopg.Connection, analytics_data.Dataset]]:
    data = analytics_data.generate(n=2500, seed=11, days=3)
    # The last 30 minutes of checkout.cart are 20x slower: an anomaly against its hourly baseline.
    late = (data.operation == "checkout.cart") & (data.start_s >= (END - timedelta(minutes=30)).timestamp())
    data.duration_ms = np.where(late, data.duration_ms * 20, data.duration_ms)
    analytics_data.load(pg_dsn, data)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn, data


def test_budget_status_spend_and_states(small: tuple[psycopg.Connection, analytics_data.Dataset]) -> None:
    conn, d = small
    store = BudgetStore(conn)
    store.set(Budget("agent", "planner", "day", 0.05))
    store.set(Budget("agent", "planner", "month", 1000.0))
    store.set(Budget("model", "gpt-4o", "week", 1.0, warning_ratio=0.5, critical_ratio=0.9))
    store.set(Budget("tenant", "acme", "day", 1e6))
    store.set(Budget("tenant", "acme", "day", 2e6))  # replaces
    assert len(store.list()) == 4
    status = {(s.scope, s.name, s.period): s for s in store.status(NOW)}
    for (scope, name, period), s in status.items():
        start, _ = period_bounds(period, NOW)
        column = {"agent": d.agent, "model": d.model, "tenant": d.tenant}[scope]
        m = (column == name) & (d.start_s >= start.timestamp()) & (d.start_s < NOW.timestamp())
        assert s.spent_usd == pytest.approx(d.cost[m].sum(), rel=1e-9, abs=1e-12)
        assert s.utilization == pytest.approx(s.spent_usd / s.amount_usd)
        expected = (
            "critical"
            if s.utilization >= s.critical_ratio
            else ("warning" if s.utilization >= s.warning_ratio else "ok")
        )
        assert s.status == expected
        assert s.period_start == start
    assert status[("agent", "planner", "day")].status == "critical"
    assert status[("tenant", "acme", "day")].amount_usd == 2e6
    assert status[("agent", "planner", "month")].status == "ok"
    assert period_bounds("week", NOW)[0] == datetime(2026, 11, 16, tzinfo=UTC)  # Monday
    assert store.delete("tenant", "acme", "day") and not store.delete("tenant", "acme", "day")
    with pytest.raises(ValueError, match="scope"):
        store.set(Budget("team", "x", "day", 1.0))
    with pytest.raises(ValueError, match="warning_ratio"):
        store.set(Budget("agent", "x", "day", 1.0, warning_ratio=1.5, critical_ratio=1.0))


def _expected_metric_firings(d: analytics_data.Dataset, window_s: float, metric: str, threshold: float) -> set[str]:
    out = set()
    w = d.start_s >= NOW.timestamp() - window_s
    w &= d.start_s < NOW.timestamp()
    for service in set(d.service[w]):
        m = w & (d.service == service)
        value = {"avg_ms": d.duration_ms[m].mean(), "error_rate": d.error[m].mean()}[metric]
        if value > threshold:
            out.add(f"service={service}")
    return out


def test_metric_rules_fire_per_service(small: tuple[psycopg.Connection, analytics_data.Dataset]) -> None:
    conn, d = small
    a = Analytics(conn)
    rules = [
        AlertRuleConfig(name="slow", metric="avg_ms", threshold=300.0, window=Duration(3600.0)),
        AlertRuleConfig(
            name="errors", metric="error_rate", threshold=0.05, window=Duration(3600.0), severity="critical"
        ),
        AlertRuleConfig(name="p95", metric="p95_ms", threshold=2000.0, window=Duration(3600.0), group_by="operation"),
    ]
    firings = evaluate(a, rules, NOW)
    assert {f.scope for f in firings if f.rule == "slow"} == _expected_metric_firings(d, 3600, "avg_ms", 300.0)
    assert {f.scope for f in firings if f.rule == "errors"} == _expected_metric_firings(d, 3600, "error_rate", 0.05)
    w = (d.start_s >= NOW.timestamp() - 3600) & (d.start_s < NOW.timestamp())
    p95 = {
        f"service={d.service[d.operation == op][0]},operation={op}"
        for op in set(d.operation[w])
        if np.percentile(d.duration_ms[w & (d.operation == op)], 95) > 2000.0
    }
    assert {f.scope for f in firings if f.rule == "p95"} == p95
    assert all(f.severity == "critical" for f in firings if f.rule == "errors")
    assert firings, "the generated data makes at least one rule fire"


def test_anomaly_rule_matches_numpy_baseline(small: tuple[psycopg.Connection, analytics_data.Dataset]) -> None:
    conn, d = small
    rule = AlertRuleConfig(
        name="anomaly",
        metric="anomaly_avg_ms",
        window=Duration(1800.0),
        baseline=Duration(86400.0),
        group_by="operation",
    )
    firings = evaluate(Analytics(conn), [rule], NOW)
    expected = set()
    now_s, start_s = NOW.timestamp(), NOW.timestamp() - 1800
    for op in set(d.operation):
        cur = d.duration_ms[(d.operation == op) & (d.start_s >= start_s) & (d.start_s < now_s)]
        base_mask = (d.operation == op) & (d.start_s >= now_s - 86400) & (d.start_s < start_s)
        hours = (d.start_s[base_mask] // 3600).astype(int)
        hourly = [d.duration_ms[base_mask][hours == h].mean() for h in sorted(set(hours))]
        if len(cur) and len(hourly) >= 6 and (cur.mean() - np.mean(hourly)) / np.std(hourly) >= 3.0:
            expected.add(op)
    assert {f.scope.split("operation=")[1] for f in firings} == expected
    assert "checkout.cart" in expected


def test_alert_lifecycle_and_dedup(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        store = AlertStore(conn)
        fire = Firing("slow", "warning", "service=a", "avg_ms", 900.0, 500.0, "slow a")
        opened, resolved = store.apply([fire], ["slow"], NOW)
        assert len(opened) == 1 and not resolved and opened[0].status == "active"
        first = opened[0]
        opened, _ = store.apply([Firing("slow", "warning", "service=a", "avg_ms", 950.0, 500.0, "slower")], ["slow"])
        assert opened == []
        again = store.get(first.id)
        assert again is not None and again.occurrences == 2 and again.value == 950.0 and again.message == "slower"
        acked = store.acknowledge(first.id, "oncall")
        assert acked is not None and acked.status == "acknowledged" and acked.acknowledged_at is not None
        assert store.acknowledge(first.id) is None  # only active alerts can be acknowledged
        store.apply([fire], ["slow"])
        kept = store.get(first.id)
        assert kept is not None and kept.status == "acknowledged" and kept.occurrences == 3
        # Another rule's round does not resolve it; a round of its own rule without firing does.
        assert store.apply([], ["errors"])[1] == []
        _, resolved = store.apply([], ["slow"])
        assert [r.id for r in resolved] == [first.id] and resolved[0].resolved_at is not None
        opened, _ = store.apply([fire], ["slow"])
        assert len(opened) == 1 and opened[0].id != first.id
        assert store.resolve(opened[0].id) is not None and store.resolve(opened[0].id) is None
        assert [x.status for x in store.list()] == ["resolved", "resolved"]
        assert store.list("open") == [] and store.counts() == {"active": 0, "acknowledged": 0, "critical": 0}
        with pytest.raises(ValueError, match="status"):
            store.list("sleeping")


def test_webhook_delivery_and_failure_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        got.set()
        return Response(status_code=204)

    async def scenario() -> None:
        server = HTTPServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "127.0.0.1:0")
        await server.start()
        try:
            fire = Firing("slow", "warning", "service=a", "avg_ms", 900.0, 500.0, "slow a")
            from collector.analytics.models import Alert

            alert = Alert(
                1,
                fire.fingerprint,
                "slow",
                "warning",
                "active",
                "service=a",
                "avg_ms",
                900.0,
                500.0,
                "slow a",
                NOW,
                NOW,
                None,
                None,
                1,
            )
            config = WebhookConfig(url=f"http://127.0.0.1:{server.port}/hook?key=S3cr3tK3y", headers={"X-Team": "sre"})
            assert await deliver_webhook(config, [alert], [])
            await asyncio.wait_for(got.wait(), 5)
            bad = WebhookConfig(url=f"http://127.0.0.1:{server.port}/missing/S3cr3tK3y", timeout=Duration(2.0))
            assert not await deliver_webhook(bad, [alert], [])  # 404: logged, not raised
        finally:
            await server.shutdown()
        # Nobody listening any more: connection refused, logged, not raised.
        assert not await deliver_webhook(config, [alert], [])

    with caplog.at_level(logging.WARNING, logger="otel_metrics.analytics"):
        asyncio.run(scenario())
    assert received[0]["opened"][0]["scope"] == "service=a" and received[0]["resolved"] == []
    assert "answered 404" in caplog.text and "ConnectError" in caplog.text
    assert "S3cr3tK3y" not in caplog.text  # a webhook URL is a secret


def test_service_health_and_summary(small: tuple[psycopg.Connection, analytics_data.Dataset]) -> None:
    conn, d = small
    a = Analytics(conn)
    health = {h.service: h for h in service_health(a, NOW)}
    w = (d.start_s >= NOW.timestamp() - 3600) & (d.start_s < NOW.timestamp())
    for service, h in health.items():
        m = w & (d.service == service)
        assert h.calls == m.sum()
        assert h.status == ("degraded" if d.error[m].mean() > 0.05 else "healthy")
    store = AlertStore(conn)
    store.apply([Firing("slow", "warning", "service=checkout", "avg_ms", 1.0, 0.5, "x")], ["slow"], NOW)
    assert {h.service: h.status for h in service_health(a, NOW)}["checkout"] == "degraded"
    assert overall_status(service_health(a, NOW)) == "degraded"
    later = NOW + timedelta(days=30)
    assert {h.status for h in service_health(a, later)} == {"no_data"}
    assert overall_status([]) == "no_data"
    s = summary(a, NOW)
    day = (d.start_s >= NOW.timestamp() - 86400) & (d.start_s < NOW.timestamp())
    assert s.calls_24h == day.sum()
    assert s.error_rate_24h == pytest.approx(d.error[day].mean())
    assert s.p95_ms_24h == pytest.approx(np.percentile(d.duration_ms[day], 95), rel=1e-9)
    assert s.cost_24h_usd == pytest.approx(d.cost[day].sum(), rel=1e-9)
    assert s.active_alerts == 1 and s.status == "degraded"


def _agent(
    name: str,
    tasks: int,
    cost: float,
    quality: float | None,
    success: float = 0.99,
    budget: float | None = None,
    spent: float | None = None,
) -> AgentStats:
    return AgentStats(
        name,
        tasks,
        int(tasks * success),
        success,
        100.0,
        90.0,
        200.0,
        0,
        0,
        cost,
        quality,
        None,
        None,
        None,
        budget,
        None if budget is None else budget - (spent or 0.0),
        None if budget is None else (spent or 0.0) / budget,
    )


def test_recommendations() -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)  # 20 of 30 November days elapsed
    budgets = [
        BudgetStatus(
            "agent", "idle", "month", 100.0, 10.0, 90.0, 0.1, 0.8, 1.0, "ok", datetime(2026, 11, 1, tzinfo=UTC)
        ),
        BudgetStatus(
            "agent", "busy", "month", 100.0, 60.0, 40.0, 0.6, 0.8, 1.0, "ok", datetime(2026, 11, 1, tzinfo=UTC)
        ),
    ]
    agents = [
        _agent("star", 500, 5.0, 0.93, budget=100.0, spent=20.0),
        _agent("rare", 3, 0.3, 0.9),
        _agent("pricey", 400, 40.0, 0.55),
        _agent("ok", 300, 3.0, 0.75),
    ]
    recs = {(r.kind, r.name): r for r in advice.recommendations(agents, budgets, now)}
    # idle: projected 10 / (20/30) = 15 USD of 100 -> reduce to 18, saving 82
    assert recs[("reduce_budget", "idle")].estimated_saving_usd == pytest.approx(82.0)
    assert ("reduce_budget", "busy") not in recs  # projected 90 %
    assert recs[("pause", "rare")].estimated_saving_usd == pytest.approx(0.3)
    assert ("increase_capacity", "star") in recs and ("increase_capacity", "ok") not in recs
    # median cost per task of (0.01, 0.1, 0.1, 0.01) = 0.055 ... pricey costs 0.1 per task: < 2x, no review
    assert ("review", "pricey") not in recs
    agents.append(_agent("cheap", 300, 0.3, 0.9))
    recs = {(r.kind, r.name): r for r in advice.recommendations(agents, budgets, now)}
    # median of (0.01, 0.1, 0.1, 0.01, 0.001) = 0.01: pricey at 10x with quality 0.55 -> review
    assert recs[("review", "pricey")].estimated_saving_usd == pytest.approx(40.0 - 400 * 0.01)


def test_insights_and_business_value() -> None:
    ops = [
        {
            "operation": "plan",
            "agent": "a",
            "calls": 10,
            "successes": 9,
            "avg_ms": 120.0,
            "cost_usd": 0.9,
            "quality_avg": 0.8,
        },
        {
            "operation": "plan",
            "agent": "b",
            "calls": 10,
            "successes": 10,
            "avg_ms": 80.0,
            "cost_usd": 0.5,
            "quality_avg": 0.9,
        },
        {
            "operation": "solo",
            "agent": "a",
            "calls": 5,
            "successes": 5,
            "avg_ms": 10.0,
            "cost_usd": 0.0,
            "quality_avg": None,
        },
    ]
    hourly = [UsagePoint(f"{h:02d}", c) for h, c in enumerate([0] * 20 + [5, 9, 9, 1])]
    trend = Trend("avg_ms", 7, 12.0, 100.0, 0.9, 0.001, 100.0, 180.0, "degrading")
    stable = Trend("avg_ms", 7, 0.1, 100.0, 0.1, 0.5, 100.0, 101.0, "stable")
    found = advice.insights(ops, hourly, {("svc", "plan"): trend, ("svc", "solo"): stable})
    kinds = [(i.kind, i.subject) for i in found]
    assert ("fastest_agent", "plan: b") in kinds and not any(s.startswith("solo") for _, s in kinds)
    assert ("most_cost_efficient", "b") in kinds  # 0.05 per success vs a's 0.9 / 14
    assert ("highest_quality", "b") in kinds
    assert [s for k, s in kinds if k == "peak_hour"] == ["21:00 UTC", "22:00 UTC", "20:00 UTC"]
    assert [s for k, s in kinds if k == "degrading_operation"] == ["svc/plan"]
    value = advice.business_value(tasks=120, cost_usd=50.0, minutes_saved_per_task=15, hourly_rate_usd=60.0)
    assert (value.hours_saved, value.savings_usd, value.net_value_usd, value.roi) == (30.0, 1800.0, 1750.0, 35.0)
    assert advice.business_value(1, 0.0, 1, 1).roi is None
    with pytest.raises(ValueError):
        advice.business_value(1, 1.0, -1, 1)


def test_config_validation_names_the_key() -> None:
    config = AnalyticsConfig()
    assert config.validate() == []
    assert [r.name for r in default_rules()] == [
        "high_avg_latency",
        "high_p95_latency",
        "high_error_rate",
        "budget",
        "latency_anomaly",
    ]
    config.alerts.rules.append(AlertRuleConfig(name="high_avg_latency", metric="median", threshold=None))
    config.alerts.webhook.url = "ftp://x"
    config.thresholds.slow = Duration(40.0)
    errors = config.validate()
    assert (
        "alerts::rules::5::metric: expected one of avg_ms, p95_ms, error_rate, budget_utilization, "
        "anomaly_avg_ms, got 'median'" in errors
    )
    assert "alerts::rules::5::name: 'high_avg_latency' appears twice" in errors
    assert any(e.startswith("alerts::webhook::url") for e in errors)
    assert any(e.startswith("thresholds:") for e in errors)


def test_a_failed_webhook_never_logs_its_secret_url(caplog: pytest.LogCaptureFixture) -> None:
    """Webhook URLs carry their secret in the path or query (Slack, Teams); a failure logs only the origin."""
    from collector.analytics.models import Alert

    alert = Alert(1, "f", "slow", "warning", "active", "service=a", "avg_ms", 9.0, 5.0, "m", NOW, NOW, None, None, 1)

    async def missing(request: Request) -> Response:
        return Response(status_code=404)

    async def scenario() -> None:
        server = HTTPServer(Starlette(routes=[Route("/{path:path}", missing, methods=["POST"])]), "127.0.0.1:0")
        await server.start()
        answered = f"http://127.0.0.1:{server.port}/hooks/T000/B000/SECRETPATH?token=SECRETQUERY"
        try:
            assert not await deliver_webhook(WebhookConfig(url=answered), [alert], [])
        finally:
            await server.shutdown()
        refused = WebhookConfig(url=answered, timeout=Duration(2.0))  # nobody listens any more
        assert not await deliver_webhook(refused, [alert], [])
        unparsable = WebhookConfig(url="http://user:SECRETPASS@[::1/SECRETPATH", timeout=Duration(2.0))
        assert not await deliver_webhook(unparsable, [alert], [])

    with caplog.at_level(logging.WARNING, logger="otel_metrics.analytics"):
        asyncio.run(scenario())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "answered 404" in logged and logged.count("failed") == 2
    assert "SECRET" not in logged and "127.0.0.1" in logged
    assert "SECRET" not in " ".join(WebhookConfig(url="ftp://x/SECRETPATH").validate())

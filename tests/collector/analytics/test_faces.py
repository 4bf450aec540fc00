"""The CLI, the HTTP API and the ``analytics`` extension give the same answers from the same inputs: they all call
``collector.analytics.compose`` (insights, recommendations, business value, an alert round)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from collector.analytics import compose
from collector.analytics.api import AnalyticsAPI
from collector.analytics.config import AlertRuleConfig, AlertsConfig, AnalyticsConfig, WebhookConfig
from collector.analytics.extension import AnalyticsExtension
from collector.analytics.models import to_jsonable
from collector.analytics.queries import Analytics
from collector.analytics.window import NO_FILTERS, TimeWindow
from collector.cli import app
from collector.component import ComponentID
from processors.pipeline import CreateSettings, Duration, Signal
from tests.collector.analytics import analytics_data
from tests.collector.analytics.served import running, serve

runner = CliRunner()


def cli(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture
def recent(pg_dsn: str) -> Iterator[tuple[str, datetime]]:
    """Spans of the last 20 days (so a 7-day and a 30-day lookback see different agents), few enough that agents
    earn recommendations, in a schema of their own; and the end of the data."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    analytics_data.load(pg_dsn, analytics_data.generate(n=150, seed=11, end=end, days=20))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO budgets (scope, name, period, amount_usd) VALUES ('agent', 'planner', 'week', 1000)")
    yield pg_dsn, end


@pytest.mark.parametrize("window", ["default", "explicit"])
def test_insights_recommendations_and_business_value_agree(recent: tuple[str, datetime], window: str) -> None:
    dsn, end = recent
    # Both faces resolve their default lookbacks against the same end (--until), so they read the same data.
    until = (end + timedelta(seconds=1)).isoformat()
    span = (
        {"until": until} if window == "default" else {"since": (end - timedelta(days=12)).isoformat(), "until": until}
    )
    args = [x for k, v in span.items() for x in (f"--{k}", v)]
    from_cli = cli("insights", "--dsn", dsn, *args, "--minutes-saved", "6", "--hourly-rate", "50")
    with serve(AnalyticsAPI(lambda: dsn)) as client:
        api_insights = client.get("/insights", params=span).json()
        api_recommendations = client.get("/recommendations", params=span).json()
        api_value = client.get("/business-value", params={**span, "minutes_saved": 6, "hourly_rate": 50}).json()
    assert from_cli["insights"] == api_insights["items"] and api_insights["items"]
    assert from_cli["recommendations"] == api_recommendations["items"] and api_recommendations["items"]
    assert from_cli["business_value"] == api_value and api_value["tasks"] > 0
    # And both are the composition itself.
    until_dt = datetime.fromisoformat(until)
    insights_window = TimeWindow.parse(
        since=span.get("since"), until=until, now=until_dt, default_hours=compose.INSIGHTS_LOOKBACK.days * 24
    )
    advice_window = TimeWindow.parse(
        since=span.get("since"), until=until, now=until_dt, default_hours=compose.ADVICE_LOOKBACK.days * 24
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        a = Analytics(conn)
        assert to_jsonable(compose.insights(a, insights_window, NO_FILTERS)) == from_cli["insights"]
        assert to_jsonable(compose.recommendations(a, advice_window)) == from_cli["recommendations"]
    if window == "default":  # the lookbacks differ, and each face uses each one for the same answer
        assert api_insights["window"]["start"] != api_recommendations["window"]["start"]


# -- one alert round -------------------------------------------------------------------------------------------
@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on a real server: its URL, and each delivery's payload."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=200)

    with running(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as port:
        yield f"http://127.0.0.1:{port}/hook", received


def _yaml(dsn_url: str, hook_url: str, rules: list[AlertRuleConfig] | None) -> str:
    text = f"exporters:\n  postgres:\n    dsn: {dsn_url}\nextensions:\n  analytics:\n    alerts:\n"
    text += f"      webhook: {{url: {hook_url}}}\n"
    if rules is not None:
        text += "      rules:" + ("\n" if rules else " []\n")
        for r in rules:
            text += f"        - {{name: {r.name}, metric: {r.metric}, threshold: {r.threshold}, window: {r.window}}}\n"
    return text


def _config(hook_url: str, rules: list[AlertRuleConfig] | None) -> AnalyticsConfig:
    alerts = AlertsConfig(webhook=WebhookConfig(url=hook_url))
    if rules is not None:
        alerts.rules = list(rules)
    return AnalyticsConfig(alerts=alerts)


def _round(face: str, dsn: str, hook_url: str, rules: list[AlertRuleConfig] | None, tmp: Path) -> Any:
    """One alert round through ``face``; the alerts it opened, as JSON."""
    config = _config(hook_url, rules)
    if face == "cli":
        path = tmp / "otel-collector.yaml"
        path.write_text(_yaml(dsn, hook_url, rules))
        return cli("alerts", "evaluate", "--config", str(path)) or []
    if face == "api":
        with serve(AnalyticsAPI(lambda: dsn, config)) as client:
            r = client.post("/alerts/evaluate", json={})
            assert r.status_code == 200, r.text
            return r.json()["items"]
    config.dsn = dsn
    ext = AnalyticsExtension(CreateSettings(ComponentID.parse("analytics"), Signal.TRACES), config)
    round_ = ext.evaluate_once()
    asyncio.run(compose.deliver_alert_round(round_, config.alerts.webhook))  # as its alert loop does
    return to_jsonable(round_.opened)


def _comparable(alerts: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((a["rule"], a["scope"], a["severity"], a["metric"], a["value"]) for a in alerts)


@pytest.mark.parametrize("rules_given", ["custom", "empty", "absent"])
def test_one_alert_round_from_every_face(new_schema: Callable[[], str], tmp_path: Path, rules_given: str) -> None:
    """Each face, on its own copy of the same data, opens the same alerts and delivers them to the webhook (the
    API's evaluate sent none before); ``rules: []`` evaluates nothing anywhere (the API used the defaults), no
    ``rules`` key the default rules everywhere."""
    now = datetime.now(UTC)
    data = analytics_data.generate(n=200, seed=5, end=now - timedelta(seconds=5), days=1 / 48)
    custom = [AlertRuleConfig(name="any_calls", metric="avg_ms", threshold=0.0, window=Duration(3600.0))]
    rules = {"custom": custom, "empty": [], "absent": None}[rules_given]
    opened: dict[str, list[Any]] = {}
    with webhook() as (hook_url, received):
        for face in ("cli", "api", "extension"):
            dsn = new_schema()
            analytics_data.load(dsn, data)
            before = len(received)
            opened[face] = _round(face, dsn, hook_url, rules, tmp_path)
            delivered = received[before:]
            if opened[face]:
                assert len(delivered) == 1 and _comparable(delivered[0]["opened"]) == _comparable(opened[face]), face
            else:
                assert delivered == [], face
    assert _comparable(opened["cli"]) == _comparable(opened["api"]) == _comparable(opened["extension"])
    if rules_given == "custom":
        assert {a["scope"] for a in opened["api"]} == {f"service={s}" for s in set(data.service)}
    elif rules_given == "empty":
        assert opened["api"] == []
    else:
        defaults = {r.name for r in compose.alert_rules(None)}
        assert defaults == {r.name for r in AnalyticsConfig().alerts.rules}
        assert all(a["rule"] in defaults for a in opened["api"])

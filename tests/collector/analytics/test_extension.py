"""The ``analytics`` extension inside a collector-like host: serves the API and evaluates alerts on schedule,
delivering new alerts to a webhook."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.analytics.config import AlertRuleConfig, AlertsConfig, AnalyticsConfig, WebhookConfig
from collector.analytics.extension import AnalyticsExtension, config_from_file, factories
from collector.component import ComponentID
from collector.confighttp import HTTPServer
from processors.pipeline import CreateSettings, Duration, Signal
from tests.collector.analytics import analytics_data


class _Host:
    up_since = time.time()

    def get_extension(self, id: ComponentID) -> Any:
        raise KeyError(id)

    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        return {"pipeline/traces": {"healthy": True, "status": "ok"}, "exporter/postgres": {"healthy": True}}


async def _until(predicate: Any, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


def test_extension_serves_api_and_evaluates_alerts(pg_dsn: str) -> None:
    # Recent data, so rules over "the last hour" see it.
    now = datetime.now(UTC)
    data = analytics_data.generate(n=400, seed=3, end=now - timedelta(seconds=5), days=1)
    analytics_data.load(pg_dsn, data)
    recent = data.start_s >= (now - timedelta(hours=1)).timestamp()
    services_with_calls = {f"service={s}" for s in set(data.service[recent])}
    assert services_with_calls
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=200)

    async def scenario() -> None:
        sink = HTTPServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "127.0.0.1:0")
        await sink.start()
        config = AnalyticsConfig(
            endpoint="127.0.0.1:0",
            token="t0k",
            dsn=pg_dsn,
            alerts=AlertsConfig(
                interval=Duration(0.05),
                rules=[AlertRuleConfig(name="any_calls", metric="avg_ms", threshold=0.0, window=Duration(3600.0))],
                webhook=WebhookConfig(url=f"http://127.0.0.1:{sink.port}/hook"),
            ),
        )
        assert config.validate() == []
        ext = factories[0].create(CreateSettings(ComponentID.parse("analytics"), Signal.TRACES), config)
        assert isinstance(ext, AnalyticsExtension)
        await ext.start(_Host())
        try:
            await _until(lambda: ext.evaluations >= 2 and received)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ext.port}/api/v1") as client:
                health = (await client.get("/health")).json()
                assert health["status"] == "healthy" and "pipeline/traces" in health["checks"]["pipelines"]
                assert (await client.get("/alerts")).status_code == 401
                alerts = (await client.get("/alerts", headers={"Authorization": "Bearer t0k"})).json()["items"]
            assert {a["scope"] for a in alerts} == services_with_calls
            assert all(a["status"] == "active" and a["occurrences"] >= 2 for a in alerts)  # de-duplicated
            assert {a["scope"] for a in received[0]["opened"]} == services_with_calls
        finally:
            await ext.shutdown()
            await sink.shutdown()

    asyncio.run(scenario())
    with psycopg.connect(pg_dsn) as conn:
        count = conn.execute("SELECT count(*) FROM alerts").fetchone()
        cached = conn.execute("SELECT count(*) FROM analytics_rollup_days").fetchone()
    assert count is not None and count[0] == len(services_with_calls)
    assert cached is not None and cached[0] >= 1  # yesterday (the data spans the last 24 h) was cached
    assert len(received) == 1  # later rounds open nothing new, so nothing more is sent


def test_config_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_TOKEN", "abc")
    path = tmp_path / "otel-collector.yaml"
    path.write_text(
        "extensions:\n  analytics:\n    token: ${env:ANALYTICS_TOKEN}\n    alerts:\n      interval: 30s\n"
        "      rules:\n        - {name: slow, metric: p95_ms, threshold: 1500, severity: critical, window: 10m}\n"
        "    thresholds: {slow: 2s}\n"
    )
    config = config_from_file(path)
    assert config is not None and config.token == "abc" and config.alerts.interval == 30.0
    assert config.alerts.rules[0].window == 600.0 and config.thresholds.slow == 2.0
    path.write_text("extensions:\n  analytics:\n    alerts:\n      rules:\n        - {name: x, metric: nope}\n")
    with pytest.raises(ValueError, match=r"extensions\.analytics: alerts::rules::0::metric"):
        config_from_file(path)
    path.write_text("extensions:\n  analytics:\n    colour: red\n")
    with pytest.raises(ValueError, match="colour"):
        config_from_file(path)
    path.write_text("receivers: {}\n")
    assert config_from_file(path) is None

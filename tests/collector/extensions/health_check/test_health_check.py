"""health_check over real HTTP: 200 only while every pipeline is healthy; per-component detail."""

from __future__ import annotations

import httpx

from collector.extensions.health_check import HealthCheck
from processors.pipeline import Signal
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.nodes import node_of


def test_health_reflects_every_pipeline_component(run_collector: RunCollector, make_config: MakeConfig) -> None:
    config = make_config(
        exporters={"collect": None, "collect/backup": None},
        pipelines={
            "traces": {"receivers": ["otlp"], "exporters": ["collect", "collect/backup"]},
            "metrics": {"receivers": ["otlp"], "exporters": ["collect"]},
        },
        extensions={"health_check": {"endpoint": "127.0.0.1:0", "path": "/health"}},
        service_extensions=["health_check"],
    )
    collector = run_collector(config)
    port = node_of(collector.service, "extension", "health_check", HealthCheck).port
    url = f"http://127.0.0.1:{port}/health"

    response = httpx.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Server available" and body["healthy"] is True
    assert "upSince" in body
    assert body["components"]["pipeline/traces"]["components"] == [
        "receiver/otlp",
        "exporter/collect",
        "exporter/collect/backup",
    ]
    assert body["components"]["exporter/collect/backup"]["status"] == "StatusOK"

    collector.exporter("collect/backup", Signal.TRACES).is_healthy = False
    response = httpx.get(url)
    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False and body["status"] == "Server not available"
    assert body["components"]["exporter/collect/backup"]["healthy"] is False
    assert body["components"]["exporter/collect/backup"]["status"] == "StatusRecoverableError"
    assert body["components"]["pipeline/traces"]["healthy"] is False
    assert body["components"]["pipeline/metrics"]["healthy"] is True

    collector.exporter("collect/backup", Signal.TRACES).is_healthy = True
    assert httpx.get(url).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404

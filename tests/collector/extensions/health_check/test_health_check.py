"""health_check over real HTTP: 200 only while every pipeline is healthy; per-component detail."""

from __future__ import annotations

from typing import Any

import httpx

from processors.pipeline import Signal


def test_health_reflects_every_pipeline_component(run_collector: Any, make_config: Any) -> None:
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
    port = collector.service.node("extension", "health_check").port
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

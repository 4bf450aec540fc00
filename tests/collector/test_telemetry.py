"""The collector's own telemetry: SDK instruments from meter_provider() served in Prometheus format."""

from __future__ import annotations

import asyncio
import os

import httpx

from collector import telemetry
from collector.component import ComponentID, CreateSettings, Signal
from tests.support.prom_helpers import PROMTOOL, promtool_check


def _sample(text: str, prefix: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(prefix))
    return float(line.rsplit(" ", 1)[1])


def test_meter_provider_is_one_private_instance() -> None:
    from opentelemetry import metrics

    mp = telemetry.meter_provider()
    assert telemetry.meter_provider() is mp
    assert metrics.get_meter_provider() is not mp


def test_serve_exposes_component_counters_and_process_gauges() -> None:
    # The provider is process-wide (other tests' services record into it too): this test's metric is its own.
    settings = CreateSettings(
        ComponentID("otlp"),
        Signal.TRACES,
        meter=telemetry.meter_provider().get_meter("otel_metrics.collector"),
    )
    accepted = settings.meter.create_counter(
        "otelcol_test_only_accepted_spans", unit="{span}", description="Spans accepted."
    )
    accepted.add(42, {"receiver": "otlp", "transport": "grpc"})

    async def scrape() -> tuple[int, str]:
        server = await telemetry.serve("127.0.0.1:0")
        try:
            async with httpx.AsyncClient() as client:
                resp = await client.get(f"http://127.0.0.1:{server.port}/metrics")
            return resp.status_code, resp.text
        finally:
            await server.close()

    status, text = asyncio.run(scrape())
    assert status == 200
    assert _sample(text, "otelcol_test_only_accepted_spans_total{") == 42
    line = next(x for x in text.splitlines() if x.startswith("otelcol_test_only_accepted_spans_total{"))
    assert 'receiver="otlp"' in line and 'transport="grpc"' in line and 'job="otel-metrics-collector"' in line
    rss = _sample(text, "otelcol_process_memory_rss{")
    with open(f"/proc/{os.getpid()}/status") as f:
        vm_rss_kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
    assert 0.5 * vm_rss_kb * 1024 < rss < 2 * vm_rss_kb * 1024
    assert _sample(text, "otelcol_process_uptime{") > 0
    if PROMTOOL is not None:
        assert promtool_check(text) == ""


def test_closed_server_refuses_connections() -> None:
    async def run() -> None:
        server = await telemetry.serve("127.0.0.1:0")
        port = server.port
        await server.close()
        async with httpx.AsyncClient() as client:
            try:
                await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except httpx.ConnectError:
                return
        raise AssertionError("server still answering after close()")

    asyncio.run(run())

"""Jaeger's Monitor tab from our spanmetrics: our collector (otlp -> spanmetrics -> prometheus exporter, the shipped
config's spanmetrics settings) is scraped by a real Prometheus (Debian's), which Jaeger v2 reads as its metrics
backend (deploy/upstream/jaeger/monitor.yaml). Jaeger's own metrics API must answer call rates, error rates and
latencies for our services."""

from __future__ import annotations

import math
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.peers.peer_procs import ROOT, Proc, free_port, port_open, start_our_collector, wait_for
from tests.support.sink_otlp import make_spans

pytestmark = pytest.mark.slow
SERVICES = ("agent-service", "tools-service")
prometheus_bin = shutil.which("prometheus")


def _our_config(prometheus_port: int) -> dict[str, Any]:
    shipped = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    spanmetrics = {**shipped["connectors"]["spanmetrics"], "metrics_flush_interval": "1s"}
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "connectors": {"spanmetrics": spanmetrics},
        "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{prometheus_port}"}},
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["spanmetrics"]},
                "metrics": {"receivers": ["spanmetrics"], "exporters": ["prometheus"]},
            },
        },
    }


def _send(port: int, service: str) -> None:
    def build(tracer: Any) -> None:
        for i in range(10):
            with tracer.start_as_current_span("POST /v1/query", kind=SpanKind.SERVER) as span:
                span.set_attribute("tenant.id", f"t{i % 2}")
                if i % 4 == 0:
                    span.set_status(Status(StatusCode.ERROR, "boom"))
                time.sleep(0.002)  # a measurable duration for the latency histogram, not synchronisation

    client = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
    assert client.export(make_spans(build, service=service)) is SpanExportResult.SUCCESS
    client.shutdown()


def _prometheus_has(url: str, query: str, minimum: float) -> bool:
    try:
        result = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    return bool(result) and all(float(r["value"][1]) >= minimum for r in result)


def _positive_points(jaeger_url: str, path: str, service: str, **params: str) -> list[float]:
    response = httpx.get(
        f"{jaeger_url}/api/metrics/{path}",
        params={
            "service": service,
            "spanKind": "server",
            "lookback": "300000",
            "step": "1000",
            "ratePer": "600000",
            **params,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    values = []
    for metric in response.json().get("metrics", []):
        labels = {label["name"]: label["value"] for label in metric["labels"]}
        assert labels.get("service_name") == service, labels
        for point in metric["metricPoints"]:
            value = float(point["gaugeValue"]["doubleValue"])
            if not math.isnan(value) and value > 0:
                values.append(value)
    return values


@pytest.mark.skipif(prometheus_bin is None, reason="Debian's prometheus is not installed (scripts/test installs it)")
def test_jaeger_monitor_tab_reads_our_spanmetrics_through_prometheus(jaeger: Path, workdir: Path) -> None:
    assert prometheus_bin is not None
    exposition = free_port()
    ours, otlp_port = start_our_collector(_our_config(exposition), workdir, "ours")
    prom_port = free_port()
    (workdir / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "otel-metrics", "static_configs": [{"targets": [f"127.0.0.1:{exposition}"]}]}
                ],
            }
        )
    )
    prometheus = Proc(
        "prometheus",
        [
            prometheus_bin,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        workdir / "prometheus.log",
    )
    prom_url = f"http://127.0.0.1:{prom_port}"
    ports = {name: free_port() for name in ("QUERY", "QUERY_GRPC", "OTLP_GRPC", "OTLP_HTTP", "HEALTH")}
    config_dir = ROOT / "deploy" / "upstream" / "jaeger"
    jaeger_proc = Proc(
        "jaeger",
        [str(jaeger), "--config", str(config_dir / "config.yaml"), "--config", str(config_dir / "monitor.yaml")],
        workdir / "jaeger.log",
        env={**{f"JAEGER_{k}_PORT": str(v) for k, v in ports.items()}, "JAEGER_PROMETHEUS_URL": prom_url},
    )
    jaeger_url = f"http://127.0.0.1:{ports['QUERY']}"
    try:
        prometheus.start()
        jaeger_proc.start()
        wait_for(lambda: port_open(prom_port), "Prometheus", 60, alive=prometheus.check_alive)
        wait_for(lambda: port_open(ports["QUERY"]), "Jaeger's query API", 60, alive=jaeger_proc.check_alive)
        # Two rounds a scrape apart: rate() needs the counters to grow between two samples.
        for service in SERVICES:
            _send(otlp_port, service)
        calls = 'traces_span_metrics_calls_total{span_kind="SPAN_KIND_SERVER"}'
        wait_for(lambda: _prometheus_has(prom_url, calls, 2), "Prometheus to scrape the first calls", 60)
        for service in SERVICES:
            _send(otlp_port, service)
        wait_for(lambda: _prometheus_has(prom_url, calls, 4), "Prometheus to scrape the second calls", 60)

        for service in SERVICES:
            assert wait_for(partial(_positive_points, jaeger_url, "calls", service), f"{service} call rates", 60)
            assert wait_for(partial(_positive_points, jaeger_url, "errors", service), f"{service} error rates", 60)
            latencies = wait_for(
                partial(_positive_points, jaeger_url, "latencies", service, quantile="0.95"), f"{service} latencies", 60
            )
            assert max(latencies) >= 2  # milliseconds: every span slept 2 ms
        ours.check_alive()
    finally:
        jaeger_proc.stop()
        prometheus.stop()
        ours.stop()

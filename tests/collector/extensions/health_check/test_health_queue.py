"""health_check shows each exporter's sending-queue depth: data waiting for an unreachable peer is visible."""

from __future__ import annotations

import socket
import time

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.components import Registry
from collector.exporters import otlp
from collector.extensions.health_check import HealthCheck
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.nodes import node_of


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once the socket closes


def test_health_reports_queue_depth_of_an_exporter_whose_peer_is_down(
    run_collector: RunCollector, make_config: MakeConfig, test_components: Registry
) -> None:
    components = Registry(
        receivers=test_components.receivers,
        processors=test_components.processors,
        exporters={**test_components.exporters, **{f.type: f for f in otlp.factories}},
        connectors=test_components.connectors,
        extensions=test_components.extensions,
    )
    config = make_config(
        exporters={
            "otlp/down": {
                "endpoint": f"127.0.0.1:{_closed_port()}",
                "tls": {"insecure": True},
                "sending_queue": {"queue_size": 7, "num_consumers": 1},
                "retry_on_failure": {"initial_interval": "5s", "max_elapsed_time": "0s"},
            }
        },
        pipelines={"traces": {"receivers": ["otlp"], "exporters": ["otlp/down"]}},
        extensions={"health_check": {"endpoint": "127.0.0.1:0"}},
        service_extensions=["health_check"],
    )
    collector = run_collector(config, components)
    url = f"http://127.0.0.1:{node_of(collector.service, 'extension', 'health_check', HealthCheck).port}/"

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)))
    for name in ("in-flight", "waiting"):  # one consumer: the first is being retried, the second waits
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    provider.shutdown()  # the receiver acknowledged both: they are the exporter's

    deadline = time.monotonic() + 30
    while True:
        entry = httpx.get(url).json()["components"]["exporter/otlp/down"]
        if entry.get("queue_size") == 1:
            break
        assert time.monotonic() < deadline, entry
        time.sleep(0.05)  # polling the server under test with a deadline
    assert entry["queue_capacity"] == 7

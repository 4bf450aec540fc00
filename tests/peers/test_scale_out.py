"""Scale-out as documented: ``deploy/otelcol-contrib/config.yaml`` on the real upstream Collector, load-balancing by
trace id to two of our sink processes (``deploy/sink/otel-collector.yaml``) sharing one PostgreSQL. One sink is
killed with -9 mid-stream and restarted: every span the upstream Collector accepted is stored, once.

Only addresses differ from the shipped files (compose's host names and fixed ports become free loopback ports): the
upstream config is passed unchanged, with a second ``--config`` that sets them, as the Collector merges configs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.peers.peer_procs import (
    ROOT,
    Proc,
    free_port,
    merge,
    metric_sum,
    start_our_collector,
    telemetry,
    upstream_collector,
    wait_for,
)
from tests.support.sink_otlp import make_spans
from tests.support.trace_recorder import TraceRecorder

pytestmark = pytest.mark.slow
BATCHES, TRACES_PER_BATCH, SPANS_PER_TRACE = 40, 5, 10


class _RemoteWrite(BaseHTTPRequestHandler):
    """Stands in for Prometheus' remote-write endpoint (the config's prometheusremotewrite exporter)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def remote_write_port() -> Iterator[int]:
    http = ThreadingHTTPServer(("127.0.0.1", 0), _RemoteWrite)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield http.server_address[1]
    http.shutdown()


def _sink_config(pg_dsn: str, workdir: Path, port: int, index: int, telemetry_port: int) -> dict[str, Any]:
    shipped = yaml.safe_load((ROOT / "deploy" / "sink" / "otel-collector.yaml").read_text())
    return merge(
        shipped,
        {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
            "extensions": {
                "health_check": {"endpoint": f"127.0.0.1:{free_port()}"},
                "file_storage": {"directory": str(workdir / f"sink-{index}-queue")},
            },
            "exporters": {"postgres": {"dsn": pg_dsn}},
            "service": {"telemetry": telemetry(telemetry_port)},
        },
    )


def _upstream_overrides(workdir: Path, grpc_port: int, telemetry_port: int, sinks: list[int]) -> dict[str, Any]:
    hostnames = {"resolver": {"static": {"hostnames": [f"127.0.0.1:{p}" for p in sinks]}}}
    return {
        "extensions": {
            "health_check": {"endpoint": f"127.0.0.1:{free_port()}"},
            "file_storage/queue": {"directory": str(workdir / "upstream-queue")},
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{free_port()}"},
                }
            }
        },
        "exporters": {"loadbalancing/sink": hostnames, "loadbalancing/sink-metrics": hostnames},
        "service": {"telemetry": telemetry(telemetry_port)},
    }


def _batches() -> list[list[ReadableSpan]]:
    def build(tracer: Any) -> None:
        for t in range(TRACES_PER_BATCH):
            with tracer.start_as_current_span("POST /v1/query", attributes={"tenant.id": f"t{t % 3}"}):
                for s in range(SPANS_PER_TRACE - 1):
                    with tracer.start_as_current_span(f"step{s}"):
                        pass

    return [make_spans(build, service="scaleout") for _ in range(BATCHES)]


def _stored(pg_dsn: str) -> tuple[int, set[bytes]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ids = [bytes(r[0]) for r in conn.execute("SELECT span_id FROM spans WHERE service_name = 'scaleout'")]
    return len(ids), set(ids)


def test_upstream_loadbalances_to_two_sinks_and_a_killed_sink_loses_and_doubles_nothing(
    otelcol: Path, pg_dsn: str, workdir: Path, trace_recorder: tuple[TraceRecorder, int], remote_write_port: int
) -> None:
    tempo, tempo_port = trace_recorder  # stands in for Tempo (the config's otlp/tempo exporter)
    sink_ports, sink_telemetry = [free_port(), free_port()], [free_port(), free_port()]

    def start_sink(index: int) -> Proc:
        config = _sink_config(pg_dsn, workdir, sink_ports[index], index, sink_telemetry[index])
        return start_our_collector(config, workdir, f"sink-{index}")[0]

    sinks = [start_sink(0), start_sink(1)]
    grpc_port, telemetry_port = free_port(), free_port()
    overrides = _upstream_overrides(workdir, grpc_port, telemetry_port, sink_ports)
    env_config = {
        "TEMPO_ENDPOINT": f"127.0.0.1:{tempo_port}",
        "PROMETHEUS_REMOTE_WRITE": f"http://127.0.0.1:{remote_write_port}/api/v1/write",
    }
    batches = _batches()
    expected = {s.context.span_id.to_bytes(8, "big") for batch in batches for s in batch}
    try:
        with upstream_collector(
            otelcol,
            workdir,
            ROOT / "deploy" / "otelcol-contrib" / "config.yaml",
            overrides,
            ready_port=grpc_port,
            env=env_config,
        ) as upstream:
            client = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=10)
            for index, batch in enumerate(batches):
                if index == BATCHES // 2:
                    wait_for(
                        lambda: _stored(pg_dsn)[0] > 0,
                        f"the sinks to store the first spans\n{upstream.log_tail()}",
                        120,
                        alive=upstream.check_alive,
                    )
                    sinks[0].kill9()  # mid-stream: its share is in flight or queued upstream
                assert client.export(batch) is SpanExportResult.SUCCESS, upstream.log_tail()
            client.shutdown()
            accepted = wait_for(
                lambda: metric_sum(telemetry_port, "otelcol_receiver_accepted_spans", transport="grpc"),
                "the upstream Collector's accepted-spans counter",
                30,
            )
            assert accepted == len(expected)
            sinks[0] = start_sink(0)

            def all_stored() -> bool:
                count, _ = _stored(pg_dsn)
                assert count <= len(expected), f"{count} rows for {len(expected)} spans: some were stored twice"
                return count == len(expected)

            wait_for(
                all_stored, f"every accepted span in PostgreSQL\n{upstream.log_tail()}", 240, alive=upstream.check_alive
            )
            count, ids = _stored(pg_dsn)
            assert count == len(ids) == len(expected) and ids == expected
            # The config's other trace exporter (Tempo's place) got every span too.
            wait_for(
                lambda: expected <= {span_id for _, span_id in tempo.span_ids()},
                "the otlp/tempo exporter to deliver every span",
                60,
            )
            # Both sinks had a share: the one that kept running, and the restarted one (what was queued for it).
            for index, sink in enumerate(sinks):
                sink.check_alive()
                assert metric_sum(sink_telemetry[index], "otelcol_receiver_accepted_spans") > 0, index
    finally:
        for sink in sinks:
            sink.stop()

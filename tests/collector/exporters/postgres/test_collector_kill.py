"""``kill -9`` or SIGTERM of a real collector (OTLP gRPC receiver -> postgres exporter with a file_storage persistent
queue) mid-stream: every span the collector acknowledged is stored once the collector is back; nothing is
doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Tracer

from tests.support.sink_otlp import make_spans

_RUNNER = Path(__file__).resolve().parents[4] / "tests" / "support" / "collector_proc.py"


def _start_collector(config: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(_RUNNER), str(config)],
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        cwd=config.parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the service started (or the process died)
    if not line:
        proc.wait(10)
        pytest.fail(f"collector did not start:\n{log.read_text()[-3000:]}")
    return proc, int(json.loads(line)["grpc_port"])


def _batches(n: int, size: int) -> list[list[ReadableSpan]]:
    def build(tracer: Tracer) -> None:
        for i in range(size):
            with tracer.start_as_current_span(f"op{i % 4}", attributes={"tenant.id": f"t{i % 3}"}):
                pass

    return [make_spans(build, service="killtest") for _ in range(n)]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_stop_mid_stream_loses_nothing_acked_and_doubles_nothing(
    pg_dsn: str, sink_tmp_path: Path, stop: signal.Signals
) -> None:
    config = sink_tmp_path / "otel-collector.yaml"
    config.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
extensions:
  file_storage:
    directory: {sink_tmp_path / "queue"}
exporters:
  postgres:
    dsn: "{pg_dsn}"
    retention_check_interval: 0
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
    sending_queue:
      storage: file_storage
      num_consumers: 2
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [postgres]
"""
    )
    log = sink_tmp_path / "collector.log"
    batches = _batches(30, 100)
    acked: list[int] = []
    proc, port = _start_collector(config, log)
    try:
        client = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=2)
        for index, batch in enumerate(batches[:14]):
            if index == 12:
                os.kill(proc.pid, stop)  # mid-stream: the queue holds acked, unwritten batches
                code = proc.wait(30)
                assert code == (0 if stop is signal.SIGTERM else -signal.SIGKILL), log.read_text()[-2000:]
            if client.export(batch) is SpanExportResult.SUCCESS:
                acked.append(index)
        client.shutdown()
        assert acked == list(range(12))  # all before the kill, none after it (nobody listening)

        proc, port = _start_collector(config, log)
        # A client re-sends what was not acknowledged, plus some acked batches again (duplicates).
        client = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
        resend = [i for i in range(30) if i not in acked] + acked[-3:]
        for index in resend:
            assert client.export(batches[index]) is SpanExportResult.SUCCESS
        client.shutdown()

        expected = {s.context.span_id.to_bytes(8, "big") for b in batches for s in b}
        deadline = time.monotonic() + 90
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            while True:
                stored = conn.execute("SELECT count(*) FROM spans").fetchone()
                if stored == (len(expected),):
                    break
                assert time.monotonic() < deadline, (
                    f"{stored} of {len(expected)} spans stored\n{log.read_text()[-2000:]}"
                )
                time.sleep(0.1)
            ids = {r[0] for r in conn.execute("SELECT span_id FROM spans")}
            assert ids == expected
            rollups = conn.execute(
                "SELECT (SELECT sum(count) FROM span_rollups_1m), (SELECT sum(count) FROM span_rollups_1h)"
            ).fetchone()
            assert rollups == (len(expected), len(expected))  # redelivered spans were not counted again
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

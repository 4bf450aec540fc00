"""The forward target down for "a minute", as a system: a real ``python -m collector`` (otlp receiver -> otlp
exporter with a persistent sending queue) whose gRPC peer is down while the official OTLP span exporter keeps
sending; then the peer comes back on the same port. Every span the collector acknowledged reaches the peer exactly
once, and the collector exits 0 on SIGTERM.

Time is scaled by 1/30 so the suite stays fast: the retry settings are upstream's defaults (initial_interval 5s,
multiplier 1.5, max_interval 30s) divided by 30, without jitter, and the outage lasts until the exporter has
retried through its whole backoff ramp up to max_interval and once more at it (about 3 s, "a minute" at full
scale), read from the collector's log rather than timed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REPO = Path(__file__).resolve().parents[4]
ID_KEY = "outage.id"
BATCHES = 6
SPANS_PER_BATCH = 50
MAX_INTERVAL = "1s"  # 30s / 30
CONFIG = """
extensions:
  file_storage:
    directory: {queue_dir}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp:
    endpoint: 127.0.0.1:{peer_port}
    tls:
      insecure: true
    timeout: 2s
    retry_on_failure:
      initial_interval: 167ms
      multiplier: 1.5
      randomization_factor: 0
      max_interval: {max_interval}
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
      num_consumers: 1  # one request retried at a time: the log's delays are one backoff ramp
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"""


class Peer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method name
        ids = [
            kv.value.string_value
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
            for kv in span.attributes
            if kv.key == ID_KEY
        ]
        with self._lock:
            self.seen.update(ids)
        return trace_service_pb2.ExportTraceServiceResponse()


def _serve(peer: Peer, port: int = 0) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(peer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    assert bound, f"cannot listen on 127.0.0.1:{port}"
    server.start()
    return server, bound


def _poll(what: str, predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.05)  # a poll interval, not synchronisation


def _batches() -> list[list[Any]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "outage"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("outage")
    for i in range(BATCHES * SPANS_PER_BATCH):
        tracer.start_span("work", attributes={ID_KEY: str(i)}).end()
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return [spans[i : i + SPANS_PER_BATCH] for i in range(0, len(spans), SPANS_PER_BATCH)]


def test_forward_target_down_for_a_minute_then_every_acknowledged_span_once(tmp_path: Path) -> None:
    peer = Peer()
    server, peer_port = _serve(peer)
    server.stop(grace=None).wait()  # the port is known; nothing listens on it: the target is down
    config = tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(queue_dir=tmp_path / "queue", peer_port=peer_port, max_interval=MAX_INTERVAL))
    log = tmp_path / "collector.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "--config", str(config), "--shutdown-timeout", "5"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _poll("the collector to start", lambda: "collector started" in log.read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, log.read_text()
        bound = re.search(r"OTLP/gRPC on .* \(port (\d+)\)", log.read_text())
        assert bound, log.read_text()
        port = int(bound[1])

        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=30)
        acknowledged = [exporter.export(batch) for batch in _batches()]
        exporter.shutdown()
        assert acknowledged == [SpanExportResult.SUCCESS] * BATCHES  # in the persistent queue

        # Down until the exporter has backed off up to max_interval and retried at it once more.
        def delays() -> list[float]:
            return [float(d) for d in re.findall(r"send failed \(.*\); retrying in ([0-9.]+)s", log.read_text())]

        _poll("the retries to reach max_interval twice", lambda: delays().count(1.0) >= 2, 60)
        assert delays()[:6] == [0.17, 0.25, 0.38, 0.56, 0.85, 1.0], delays()
        assert not peer.seen

        server, _ = _serve(peer, peer_port)  # the target is back
        expected = {str(i) for i in range(BATCHES * SPANS_PER_BATCH)}
        _poll("every acknowledged span at the peer", lambda: set(peer.seen) >= expected, 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-4000:]
        assert set(peer.seen) == expected
        assert [i for i, n in peer.seen.items() if n != 1] == []  # nothing delivered twice
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop(grace=None)

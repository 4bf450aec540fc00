"""memory_limiter under many unthrottled clients (issue 12): peak RSS against ``limit_mib``, and how long the
collector keeps refusing once the pressure ends.

    nice -n 10 .venv/bin/python benchmarks/memory_limiter_overload.py [--clients 48] [--seconds 15]

A real ``python -m collector`` (otlp gRPC receiver -> memory_limiter -> batch -> otlp exporter with an in-memory
sending queue) forwards to a peer in this process whose ``Export`` is held shut for the load phase, so everything
the collector accepts stays in its memory. ``limit_mib`` is the collector's own idle RSS (measured in the same run,
the baseline) plus ``--headroom`` MiB, with ``spike_limit_mib`` 20. ``--clients`` threads then send 1 MiB
(``--request-kib``) requests back to back, ignoring Retry-After (unthrottled), for ``--seconds``; RSS is sampled
every 5 ms from ``/proc/<pid>/status``.

Printed: baseline, limit, peak RSS and peak/limit (the issue measured 1.7-1.85 before admission looked at a
request's size before decoding it), how many requests were accepted and refused, then the seconds from the end of
the load (peer opened, clients stopped) until a probe request is accepted again.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collector.exporters.exporterhelper.testing import trace_request

MIB = 1 << 20
LAST_REFUSAL = [""]
CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
        max_recv_msg_size_mib: 4
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: {limit_mib}
    spike_limit_mib: 20
  batch: {{}}
exporters:
  otlp:
    endpoint: 127.0.0.1:{peer_port}
    tls:
      insecure: true
    retry_on_failure:
      max_elapsed_time: 0
    sending_queue:
      queue_size: 1000000
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp]
"""


class Peer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.gate = threading.Event()

    def Export(self, request: object, context: object) -> trace_service_pb2.ExportTraceServiceResponse:
        self.gate.wait()
        return trace_service_pb2.ExportTraceServiceResponse()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _start(tmp: Path, limit_mib: int, peer_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = tmp / f"collector-{limit_mib}.yaml"
    config.write_text(CONFIG.format(port=port, limit_mib=limit_mib, peer_port=peer_port))
    log = tmp / f"collector-{limit_mib}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "collector", "--config", str(config)], stderr=err)
    deadline = time.monotonic() + 60
    while "collector started" not in log.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"collector did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc, f"127.0.0.1:{port}"


def _send(endpoint: str, body: bytes) -> bool:
    """True accepted, False refused."""
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            call(body, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                # Raised in a client thread would only end that thread, and the load with it: stop the run.
                print(f"unexpected answer {exc.code()}: {exc.details()}", file=sys.stderr, flush=True)
                os._exit(1)
            LAST_REFUSAL[0] = exc.details() or ""
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--headroom", type=int, default=100, help="limit_mib above the idle RSS")
    parser.add_argument("--request-kib", type=int, default=1024, help="each request's size (max_recv_msg_size 4 MiB)")
    args = parser.parse_args()

    peer = Peer()
    # The collector's batches of several requests exceed grpc's default 4 MiB receive limit: a peer that refused them
    # would count accepted spans as dropped and measure its own limit, not the collector's memory.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 256 * MIB)]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(peer, server)
    peer_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    spans = (f"span-{i:05d}-" + "x" * 1000 for i in range(args.request_kib * 1024 // 1040))
    body = trace_request(*spans).SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        probe, _ = _start(Path(tmp), 100_000, peer_port)  # the baseline: idle, with a limit it cannot reach
        time.sleep(2)
        baseline = _rss(probe.pid)
        probe.terminate()
        probe.wait(30)
        limit_mib = baseline // MIB + args.headroom
        proc, endpoint = _start(Path(tmp), limit_mib, peer_port)
        counts = {"accepted": 0, "refused": 0}
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                result = _send(endpoint, body)
                counts["accepted" if result else "refused"] += 1

        peak = 0
        timeline: list[int] = []
        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()
        end = time.monotonic() + args.seconds
        next_mark = time.monotonic()
        while time.monotonic() < end:
            rss = _rss(proc.pid)
            peak = max(peak, rss)
            if time.monotonic() >= next_mark:
                timeline.append(rss // MIB)
                next_mark += 1.0
            time.sleep(0.005)
        stop.set()
        peer.gate.set()
        for t in threads:
            t.join(60)
        ended = time.monotonic()
        while not _send(endpoint, body):
            peak = max(peak, _rss(proc.pid))
            time.sleep(0.1)
        recovery = time.monotonic() - ended
        proc.terminate()
        proc.wait(30)
    server.stop(0)
    print(f"clients {args.clients}, {args.seconds:.0f} s of {len(body) / MIB:.1f} MiB requests, unthrottled")
    print(f"baseline RSS {baseline / MIB:.0f} MiB, limit_mib {limit_mib}, soft limit {limit_mib - 20} MiB")
    print(f"peak RSS {peak / MIB:.0f} MiB: peak / limit_mib = {peak / (limit_mib * MIB):.2f}")
    print(f"RSS each second under load (MiB): {timeline}")
    print(f"requests accepted {counts['accepted']}, refused {counts['refused']}")
    print(f"accepting again {recovery:.1f} s after the load ended (last refusal: {LAST_REFUSAL[0]})")


if __name__ == "__main__":
    main()

"""Listener latency while the collector works on the biggest request it accepts (issue 12: "heavy work never blocks
the loop"), and what the listener limits cost an attacker.

    .venv/bin/python benchmarks/listener_latency.py [--rounds 2] [--mib 20]

A real collector (``collector.service.Service``, built-in components, loopback, ports picked free) runs the default
config's traces processors (correlation, business, cost, redaction, batch) into a silent debug exporter, with
health_check and a prometheus exporter. A client thread polls health_check and ``/metrics`` every 20 ms and records
each answer's latency:

1. idle: the baseline, measured in the same run;
2. busy: while ``--rounds`` OTLP/HTTP requests of just under ``--mib`` (default: ``max_request_body_size``, 20 MiB)
   go through, alternately protobuf and OTLP/JSON (JSON decodes far slower in Python). A 20 MiB protobuf request
   holds ~235,000 spans: through the default processors that is minutes of CPU on a shared 2-core machine.

Printed: p50/p99/max per listener and phase, and busy p99 / idle p99; over the busy phase, the gaps in which no
thread of the process could run (a thread sleeping 2 ms measures them) and the time in full garbage collections.
Then two attacks: a 256 MiB body declared to ``/metrics`` (RSS before/after, answer time) and 500 connections
trickling header bytes to the receiver with ``read_header_timeout: 1s`` (how long until the server has closed them
all).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import threading
import time
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.config.loader import parse_config
from collector.service import Service
from collector.service.graph import NodeKind
from processors.pdata import to_json
from processors.pipeline import Signal

LIMIT = 20 * 1024 * 1024


def _rss_mib() -> float:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _request(target_bytes: int, as_json: bool) -> bytes:
    """An ExportTraceServiceRequest just under ``target_bytes`` in its encoding."""

    def build(spans: int) -> bytes:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "bench"
        ss = rs.scope_spans.add()
        for i in range(spans):
            span = ss.spans.add(name=f"op-{i % 50}", trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"))
            span.attributes.add(key="http.route").value.string_value = f"/route/{i % 50}"
            span.attributes.add(key="user.id").value.string_value = f"user-{i}"
        return to_json(req) if as_json else req.SerializeToString()

    sample = 10_000
    spans = int(target_bytes / (len(build(sample)) / sample))
    body = build(spans)
    while len(body) > target_bytes:  # ids and user numbers grow longer with the count: trim until it fits
        spans = int(spans * 0.99)
        body = build(spans)
    return body


class Collector:
    def __init__(self, config: dict[str, Any]) -> None:
        self.service = Service(parse_config(config))
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        started = threading.Event()

        def run() -> None:
            async def main() -> None:
                # as the CLI runs it (Service.run freezes the startup heap once started)
                running = self.loop.create_task(self.service.run(stop=self._stop))
                while self.service.state != "running" and not running.done():
                    await asyncio.sleep(0.01)
                started.set()
                await running

            self.loop.run_until_complete(main())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(60):
            raise SystemExit("collector did not start")

    def port(self, kind: NodeKind, name: str, signal: Signal | None = None) -> int:
        node: Any = self.service.node(kind, name, signal) if signal else self.service.node(kind, name)
        return int(node.http_port if kind == "receiver" else node.port)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _config(read_header_timeout: str = "10s") -> dict[str, Any]:
    processors = ["correlation", "business", "cost", "redaction", "batch"]
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "http": {"endpoint": "127.0.0.1:0", "read_header_timeout": read_header_timeout},
                    "grpc": {"endpoint": "127.0.0.1:0"},
                }
            }
        },
        "processors": {p: {} for p in processors},
        "exporters": {"debug": {"verbosity": "basic"}, "prometheus": {"endpoint": "127.0.0.1:0"}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "error"}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": processors, "exporters": ["debug"]},
                "metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]},
            },
        },
    }


def _grpc_export(endpoint: str) -> Any:
    """OTLP/gRPC trace Export over raw bytes."""
    return grpc.insecure_channel(endpoint).unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


def _grpc_probe(endpoint: str) -> Any:
    """An empty Export: answered by the gRPC receiver's own loop without entering the pipeline, so its latency is
    that loop's (a call with items also waits for the pipeline, on the service's loop)."""
    export = _grpc_export(endpoint)
    return lambda: export(b"", timeout=60)


def _poll(urls: dict[str, str], stop: threading.Event) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client(timeout=60) as client:
        probes = {
            name: _grpc_probe(url[len("grpc://") :])
            if url.startswith("grpc://")
            else (lambda url=url: client.get(url).raise_for_status())
            for name, url in urls.items()
        }
        while not stop.is_set():
            for name, probe in probes.items():
                t0 = time.perf_counter()
                probe()
                latencies[name].append((time.perf_counter() - t0) * 1000)
            stop.wait(0.02)
    return latencies


def _summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


class Stalls:
    """What keeps every thread from running: a thread that sleeps 2 ms records each longer gap (another thread held
    the GIL, or the scheduler ran something else), and the time spent in full garbage collections."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.full_collections: list[float] = []
        self._stop = threading.Event()
        self._gc_started = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info["generation"] == 2:
            self.full_collections.append((time.perf_counter() - self._gc_started) * 1000)

    def _sample(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.002)
            now = time.perf_counter()
            if now - last > 0.03:
                self.gaps.append((now - last) * 1000)
            last = now

    def __enter__(self) -> Stalls:
        gc.callbacks.append(self._on_gc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        gc.callbacks.remove(self._on_gc)

    def summary(self) -> str:
        over = {ms: sum(1 for gap in self.gaps if gap > ms) for ms in (50, 100, 250)}
        return (
            f"stalls: {over[50]} over 50 ms, {over[100]} over 100 ms, {over[250]} over 250 ms, longest "
            f"{max(self.gaps, default=0):.0f} ms; {len(self.full_collections)} full collections, "
            f"{sum(self.full_collections):.0f} ms in all"
        )


def _phase(urls: dict[str, str], work: Any) -> dict[str, list[float]]:
    stop = threading.Event()
    result: dict[str, dict[str, list[float]]] = {}
    poller = threading.Thread(target=lambda: result.setdefault("r", _poll(urls, stop)))
    poller.start()
    work()
    stop.set()
    poller.join()
    return result["r"]


def latency(rounds: int, size: int) -> None:
    collector = Collector(_config())
    try:
        scrape = collector.port("exporter", "prometheus", Signal.METRICS)
        receiver_node: Any = collector.service.node("receiver", "otlp", Signal.TRACES)
        urls = {
            "health_check": f"http://127.0.0.1:{collector.port('extension', 'health_check')}/",
            "prometheus /metrics": f"http://127.0.0.1:{scrape}/metrics",
            "otlp gRPC, empty export": f"grpc://127.0.0.1:{receiver_node.grpc_port}",
        }
        receiver = f"http://127.0.0.1:{collector.port('receiver', 'otlp')}/v1/traces"
        bodies = {
            "protobuf": _request(size, as_json=False),
            "json": _request(size, as_json=True),
        }
        idle = _phase(urls, lambda: time.sleep(3))
        timings: list[str] = []

        def send() -> None:
            with httpx.Client(timeout=300) as client:
                for r in range(rounds):
                    kind = "protobuf" if r % 2 == 0 else "json"
                    content_type = "application/x-protobuf" if kind == "protobuf" else "application/json"
                    t0 = time.perf_counter()
                    response = client.post(receiver, content=bodies[kind], headers={"Content-Type": content_type})
                    response.raise_for_status()
                    timings.append(f"{kind} {len(bodies[kind]) / 2**20:.1f} MiB in {time.perf_counter() - t0:.2f} s")
                    print(timings[-1], flush=True)

        def send_grpc() -> None:
            # The biggest message the default max_recv_msg_size (4 MiB) admits, decoded on the service's loop.
            body = _request(4 * 2**20 - 64 * 1024, as_json=False)
            export = _grpc_export(f"127.0.0.1:{receiver_node.grpc_port}")
            for _ in range(rounds):
                t0 = time.perf_counter()
                export(body, timeout=300)
                timings.append(f"grpc {len(body) / 2**20:.1f} MiB in {time.perf_counter() - t0:.2f} s")
                print(timings[-1], flush=True)

        def send_both() -> None:
            send()
            send_grpc()

        with Stalls() as stalls:
            busy = _phase(urls, send_both)
        print("big requests: " + "; ".join(timings))
        print(stalls.summary())
        print(f"{'listener':22} {'phase':5} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name in urls:
            for phase, data in (("idle", idle), ("busy", busy)):
                p50, p99, worst = _summary(data[name])
                print(f"{name:22} {phase:5} {len(data[name]):5d} {p50:8.1f} {p99:8.1f} {worst:8.1f}")
            ratio = _summary(busy[name])[1] / _summary(idle[name])[1]
            print(f"{name:22} busy p99 / idle p99 = {ratio:.1f}")
    finally:
        collector.stop()


def attacks() -> None:
    collector = Collector(_config(read_header_timeout="1s"))
    try:
        scrape = collector.port("exporter", "prometheus", Signal.METRICS)
        before = _rss_mib()
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", scrape)) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (256 << 20))
            status = sock.recv(64).split(b"\r\n")[0].decode()
            elapsed = (time.perf_counter() - t0) * 1000
            sent = 0
            try:  # the body anyway, 1 MiB at a time, until the server's close stops us
                for _ in range(256):
                    sock.sendall(b"\0" * (1 << 20))
                    sent += 1
            except OSError:
                pass
        print(
            f"/metrics with 256 MiB declared: {status!r} after {elapsed:.0f} ms; {sent} MiB of the body could be "
            f"sent before the server's close; RSS {before:.0f} -> {_rss_mib():.0f} MiB"
        )
        port = collector.port("receiver", "otlp")
        socks = []
        for _ in range(500):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        t0 = time.perf_counter()
        open_ = list(socks)
        while open_ and time.perf_counter() - t0 < 120:
            still = []
            for sock in open_:
                sock.setblocking(False)
                try:
                    while sock.recv(4096):
                        pass
                except BlockingIOError:
                    still.append(sock)
                except OSError:
                    pass
            open_ = still
            time.sleep(0.05)
        refused = sum(1 for s in socks if s not in open_)
        print(
            f"500 trickling connections (read_header_timeout 1s, max_connections 256): {refused} closed by the "
            f"server within {time.perf_counter() - t0:.1f} s, {len(open_)} still open"
        )
        for sock in socks:
            sock.close()
    finally:
        collector.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mib", type=float, default=LIMIT / 2**20)
    args = parser.parse_args()
    latency(args.rounds, int(args.mib * 2**20))
    attacks()


if __name__ == "__main__":
    main()

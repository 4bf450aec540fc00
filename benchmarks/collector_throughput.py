"""Collector throughput: spans/s forwarded by a real collector process, next to this machine's ceiling.

    .venv/bin/python benchmarks/collector_throughput.py [--seconds 10] [--clients 4] [--persistent] [--peer upstream]

Scenarios (each a real ``python -m collector`` process, loopback only, ports picked free):

1. forward:     otlp receiver -> memory_limiter -> correlation, business, cost -> batch -> otlp exporter
                -> a SECOND collector process (otlp receiver -> debug exporter, silent), whose
                ``otelcol_receiver_accepted_spans`` counts what arrived.
2. spanmetrics: otlp receiver -> memory_limiter -> batch -> spanmetrics connector -> prometheus exporter.
3. ``--peer upstream``: the same YAML (otlp receiver -> memory_limiter -> batch -> otlp exporter) run by our
                collector and by the upstream Collector (``scripts/upstream otelcol``), one after the other, into
                the same upstream sink; both rates, both RSS figures and the ratios, then a cProfile summary of ours
                (where its time goes).

Clients: ``--clients`` concurrent OTLP/gRPC channels (grpc.aio, ``--in-flight`` requests each) sending pre-encoded
ExportTraceServiceRequests of 512 spans (the SDK BatchSpanProcessor's batch size) built by the official SDK
encoder, retrying UNAVAILABLE as OTLP clients do. The ceiling is how fast this process merely parses and
re-serializes the same requests (upb protobuf, one core): no collector in Python can forward faster than that per
core. Everything runs in the same run on the same machine, so the ratios mean something. Bounded: < 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[1]
SPANS_PER_REQUEST = 512
DISTINCT_REQUESTS = 16
WARMUP_SECONDS = 3.0
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_requests() -> list[bytes]:
    """SDK spans shaped like an LLM agent service's, encoded by the official OTLP encoder."""
    out = []
    for r in range(DISTINCT_REQUESTS):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{r % 4}"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("bench")
        for i in range(SPANS_PER_REQUEST):
            attrs: dict[str, Any] = {
                "http.route": "/v1/chat",
                "http.response.status_code": 200,
                "tenant.id": f"t{i % 7}",
            }
            if i % 4 == 0:
                attrs.update(
                    {
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.usage.input_tokens": 100 + i,
                        "gen_ai.usage.output_tokens": 20 + i,
                    }
                )
            with tracer.start_as_current_span(f"op-{i % 16}", attributes=attrs):
                pass
        provider.shutdown()
        out.append(encode_spans(memory.get_finished_spans()).SerializeToString())
    return out


def ceiling(requests: list[bytes], seconds: float = 2.0) -> float:
    """Spans/s for parse + re-serialize of the same requests in this process (one core)."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for body in requests:
            ExportTraceServiceRequest.FromString(body).SerializeToString()
            n += SPANS_PER_REQUEST
    return n / (time.perf_counter() - t0)


def persistent_queue_rate(requests: list[bytes], workdir: Path, seconds: float = 2.0) -> tuple[float, float]:
    """(spans/s, fsyncs per second) through a QueuedExporter on file_storage (fsync on), with a no-op peer:
    what the durable queue alone costs, with 32 concurrent producers sharing group commits."""
    from collector.component import ComponentID, CreateSettings, Signal
    from collector.exporters.exporterhelper import QueueConfig, QueuedExporter, RetryConfig
    from collector.exporters.exporterhelper.testing import StaticHost
    from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension

    messages = [ExportTraceServiceRequest.FromString(b) for b in requests]
    delivered = 0
    syncs = 0
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: Any) -> None:
        nonlocal syncs
        syncs += 1
        real_fdatasync(fd)

    async def send(signal: Signal, request: object) -> None:
        nonlocal delivered
        delivered += SPANS_PER_REQUEST

    async def run() -> float:
        ext = FileStorageExtension(
            CreateSettings(ComponentID("file_storage"), Signal.TRACES),
            FileStorageConfig(directory=str(workdir / "queue-bench")),
        )
        host = StaticHost({ComponentID("file_storage"): ext})
        await ext.start(host)
        exp = QueuedExporter(
            CreateSettings(ComponentID("otlp"), Signal.TRACES),
            queue=QueueConfig(storage="file_storage", queue_size=10_000),
            retry=RetryConfig(),
            timeout=5.0,
            send=send,
        )
        await exp.start(host)
        t0 = time.perf_counter()
        deadline = t0 + seconds

        async def producer(k: int) -> None:
            while time.perf_counter() < deadline:
                await exp.consume(Signal.TRACES, messages[k % len(messages)])
                k += 1

        await asyncio.gather(*(producer(i) for i in range(32)))
        while exp.queue_size:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - t0
        await exp.shutdown()
        await ext.shutdown()
        return elapsed

    os.fdatasync = counting_fdatasync
    try:
        elapsed = asyncio.run(run())
    finally:
        os.fdatasync = real_fdatasync
    return delivered / elapsed, syncs / elapsed


def scrape(port: int, name: str) -> float:
    """Sum of a counter across series from a collector's self-telemetry endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"^{name}(_total)?(\{{| )", line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of a process so far (threads that have ended are
    not counted)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError), open(task / "status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# `python -m cProfile` writes nothing: the collector leaves through os._exit after its shutdown. This dumps the
# profile (of the main thread, where the event loop runs) on that way out.
_PROFILED = """
import cProfile, os, sys
from collector.cli import app
profile, real_exit = cProfile.Profile(), os._exit
def _exit(code):
    profile.disable()
    profile.dump_stats(sys.argv[1])
    real_exit(code)
os._exit = _exit
profile.enable()
app(["collector", *sys.argv[2:]])
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Collector:
    """Our collector, or with ``binary`` the upstream one, on ``yaml`` plus a telemetry section both read."""

    def __init__(self, name: str, yaml: str, workdir: Path, binary: Path | None = None) -> None:
        self.name = name
        self.telemetry = free_port()
        path = workdir / f"{name}.yaml"
        path.write_text(
            yaml + "\n  telemetry:\n    metrics:\n      readers:\n        - pull:\n            exporter:\n"
            f"              prometheus:\n                host: 127.0.0.1\n                port: {self.telemetry}\n"
            "    logs:\n      level: warn\n"
        )
        self.log = (workdir / f"{name}.log").open("w")
        # BENCH_PROFILE=<name> runs that collector under cProfile (written to <workdir>/<name>.prof at exit).
        if binary:
            command = [str(binary)]
        elif os.environ.get("BENCH_PROFILE") == name:
            command = [sys.executable, "-c", _PROFILED, str(workdir / f"{name}.prof")]
        else:
            command = [sys.executable, "-m", "collector"]
        self.proc = subprocess.Popen(
            [*command, "--config", str(path)],
            cwd=workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector {self.name} exited: see {self.log.name}")
            with contextlib.suppress(OSError):
                scrape(self.telemetry, "otelcol_receiver_accepted_spans")
                return
            time.sleep(0.1)
        raise RuntimeError(f"collector {self.name} did not start within {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def drive(
    port: int, requests: list[bytes], clients: int, in_flight: int, seconds: float, stop_at: list[float]
) -> int:
    """Send until the deadline from ``clients`` channels; return spans acknowledged."""
    acked = 0

    async def client(idx: int) -> None:
        nonlocal acked
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=None)

            async def stream(j: int) -> None:
                nonlocal acked
                k = idx * 7 + j
                backoff = 0.01
                while time.monotonic() < stop_at[0]:
                    try:
                        await export(requests[k % len(requests)], timeout=10)
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                            raise
                        await asyncio.sleep(backoff)  # OTLP clients back off on UNAVAILABLE
                        backoff = min(backoff * 2, 0.5)
                        continue
                    backoff = 0.01
                    acked += SPANS_PER_REQUEST
                    k += 1

            await asyncio.gather(*(stream(j) for j in range(in_flight)))

    stop_at[0] = time.monotonic() + seconds
    await asyncio.gather(*(client(i) for i in range(clients)))
    return acked


def measure(
    name: str,
    receiver_port: int,
    counter_port: int,
    counter: str,
    rss_pid: int,
    args: argparse.Namespace,
    requests: list[bytes],
) -> dict[str, float]:
    """Warm up, then count spans arriving at ``counter`` over the measured window."""
    stop_at = [0.0]
    samples: dict[str, float] = {}

    async def run() -> None:
        sender = asyncio.create_task(
            drive(receiver_port, requests, args.clients, args.in_flight, WARMUP_SECONDS + args.seconds, stop_at)
        )
        await asyncio.sleep(WARMUP_SECONDS)
        c0, t0, cpu0 = await asyncio.to_thread(scrape, counter_port, counter), time.monotonic(), cpu_seconds(rss_pid)
        cs0 = context_switches(rss_pid)
        await asyncio.sleep(args.seconds)
        c1, t1, cpu1 = await asyncio.to_thread(scrape, counter_port, counter), time.monotonic(), cpu_seconds(rss_pid)
        cs1 = context_switches(rss_pid)
        samples["cpu_us_per_span"] = (cpu1 - cpu0) / max(c1 - c0, 1) * 1e6
        samples["switches_per_request"] = (cs1 - cs0) / max(c1 - c0, 1) * SPANS_PER_REQUEST
        samples["rss_mib"], samples["peak_rss_mib"] = rss_mib(rss_pid)
        samples["acked"] = await sender
        samples["spans_per_s"] = (c1 - c0) / (t1 - t0)

    asyncio.run(run())
    return samples


FORWARD = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{recv}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 1024
    spike_limit_mib: 256
  correlation: {{}}
  business: {{}}
  cost: {{}}
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: 127.0.0.1:{dest}
    compression: {compression}
    tls:
      insecure: true
    sending_queue:
      num_consumers: 4
{storage_line}
{extensions}
service:
{service_extensions}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, correlation, business, cost, batch]
      exporters: [otlp]
"""

SINK = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{recv}
exporters:
  debug:
    sampling_initial: 0
    sampling_thereafter: 1000000000
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""

SPANMETRICS = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{recv}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 1024
    spike_limit_mib: 256
  batch:
    send_batch_size: 8192
    timeout: 200ms
connectors:
  spanmetrics:
    metrics_flush_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prom}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [spanmetrics]
    metrics:
      receivers: [spanmetrics]
      exporters: [prometheus]
"""


# The closest pipeline both collectors run: every key here means the same to both.
PEER_FORWARD = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{recv}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 1024
    spike_limit_mib: 256
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: 127.0.0.1:{dest}
    compression: {compression}
    tls:
      insecure: true
    sending_queue:
      num_consumers: 4
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp]
"""

UPSTREAM_SINK = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{recv}
exporters:
  debug:
    sampling_initial: 1
    sampling_thereafter: 1000000000
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""


def upstream_binary() -> Path:
    found = subprocess.run([str(ROOT / "scripts" / "upstream"), "otelcol"], capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"--peer upstream needs the upstream Collector: scripts/upstream otelcol\n{found.stderr}")
    return Path(found.stdout.strip())


def profile_summary(path: Path, top: int = 10) -> str:
    """The functions where our forwarder spent its own time (cProfile tottime), as shares of the total."""
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return "\n".join(
        f"         {v[2] / total:5.1%}  {func}  ({Path(file).name}:{line})" for (file, line, func), v in rows
    )


def run_peer(work: Path, args: argparse.Namespace, requests: list[bytes]) -> None:
    """Same load, same YAML, same sink: our collector, then the upstream Collector."""
    binary = upstream_binary()
    sink_port = free_port()
    sink = Collector("upstream-sink", UPSTREAM_SINK.format(recv=sink_port), work, binary)
    results: dict[str, dict[str, float]] = {}
    try:
        sink.wait_ready()
        for name, peer_binary in (("ours", None), ("upstream", binary), ("ours-profiled", None)):
            if name == "ours-profiled":
                os.environ["BENCH_PROFILE"] = name
            port = free_port()
            yaml_text = PEER_FORWARD.format(recv=port, dest=sink_port, compression=args.compression)
            fwd = Collector(name, yaml_text, work, peer_binary)
            try:
                fwd.wait_ready()
                results[name] = measure(
                    name, port, sink.telemetry, "otelcol_receiver_accepted_spans", fwd.proc.pid, args, requests
                )
            finally:
                fwd.stop()
                os.environ.pop("BENCH_PROFILE", None)
    finally:
        sink.stop()
    ours, up = results["ours"], results["upstream"]
    print(
        f"peer     receiver -> memory_limiter -> batch -> otlp (compression {args.compression}), the same YAML, "
        f"into one upstream sink:\n"
        f"         ours     {ours['spans_per_s']:>10,.0f} spans/s  {ours['cpu_us_per_span']:.2f} CPU-µs/span  "
        f"RSS {ours['rss_mib']:.0f} MiB (peak {ours['peak_rss_mib']:.0f})\n"
        f"         upstream {up['spans_per_s']:>10,.0f} spans/s  {up['cpu_us_per_span']:.2f} CPU-µs/span  "
        f"RSS {up['rss_mib']:.0f} MiB (peak {up['peak_rss_mib']:.0f})\n"
        f"         ratio ours/upstream: rate {ours['spans_per_s'] / max(up['spans_per_s'], 1):.2f} (goal >= 0.5), "
        f"RSS {ours['rss_mib'] / max(up['rss_mib'], 1):.2f} (goal <= 2), "
        f"CPU per span {ours['cpu_us_per_span'] / max(up['cpu_us_per_span'], 1e-9):.2f}\n"
        f"         (the load generator shares the 2 cores: a rate the client caps is equal for both; CPU per span "
        f"is what each collector costs)"
    )
    prof = work / "ours-profiled.prof"
    if prof.exists():
        print(
            f"where our forwarder's time goes (cProfile, own time; that run: "
            f"{results['ours-profiled']['spans_per_s']:,.0f} spans/s):\n{profile_summary(prof)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per scenario (after warm-up)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent gRPC channels")
    parser.add_argument("--in-flight", type=int, default=4, help="requests in flight per client")
    parser.add_argument("--persistent", action="store_true", help="otlp exporter queue on file_storage (fsync)")
    parser.add_argument("--compression", default="none", choices=["none", "gzip"], help="otlp exporter compression")
    parser.add_argument("--skip-spanmetrics", action="store_true")
    parser.add_argument("--peer", choices=["upstream"], help="also run the same pipeline on the upstream Collector")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 15.0)  # keep the whole run under a minute

    print(
        f"machine: {os.cpu_count()} cores; requests of {SPANS_PER_REQUEST} spans; "
        f"{args.clients} gRPC clients x {args.in_flight} in flight"
    )
    requests = build_requests()
    print(f"request size: {sum(map(len, requests)) / len(requests) / 1024:.0f} KiB protobuf")
    top = ceiling(requests)
    print(f"ceiling (parse + re-serialize, 1 core, this process): {top:,.0f} spans/s")

    work = Path(tempfile.mkdtemp(prefix="otel-bench-"))
    try:
        run_scenarios(work, args, requests, top)
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_scenarios(work: Path, args: argparse.Namespace, requests: list[bytes], top: float) -> None:
    if args.peer == "upstream":
        run_peer(work, args, requests)
    rate, syncs = persistent_queue_rate(requests, work)
    print(
        f"persistent sending queue alone (file_storage, fsync, 32 producers, no-op peer): {rate:,.0f} spans/s "
        f"({rate / top:.0%} of the ceiling; {syncs:,.0f} fsyncs/s shared by group commit)"
    )
    if True:
        sink_port, fwd_port = free_port(), free_port()
        sink = Collector("sink", SINK.format(recv=sink_port), work)
        storage = "      storage: file_storage" if args.persistent else ""
        extensions = f"extensions:\n  file_storage:\n    directory: {work / 'queues'}" if args.persistent else ""
        fwd = Collector(
            "forward",
            FORWARD.format(
                recv=fwd_port,
                dest=sink_port,
                compression=args.compression,
                storage_line=storage,
                extensions=extensions,
                service_extensions="  extensions: [file_storage]" if args.persistent else "",
            ),
            work,
        )
        try:
            sink.wait_ready()
            fwd.wait_ready()
            r = measure(
                "forward", fwd_port, sink.telemetry, "otelcol_receiver_accepted_spans", fwd.proc.pid, args, requests
            )
        finally:
            fwd.stop()
            sink.stop()
        queue = "persistent (file_storage, fsync)" if args.persistent else "in-memory"
        print(
            f"forward  receiver -> memory_limiter -> correlation,business,cost -> batch -> otlp ({queue} queue, "
            f"compression {args.compression}) -> 2nd collector:\n"
            f"         {r['spans_per_s']:,.0f} spans/s arrived at the 2nd collector "
            f"({r['spans_per_s'] / top:.0%} of the ceiling); collector CPU {r['cpu_us_per_span']:.2f} µs/span "
            f"(every thread); {r['switches_per_request']:.1f} context switches per request of {SPANS_PER_REQUEST} "
            f"spans (every thread); RSS {r['rss_mib']:.0f} MiB (peak {r['peak_rss_mib']:.0f} MiB)"
        )

        if not args.skip_spanmetrics:
            port, prom = free_port(), free_port()
            sm = Collector("spanmetrics", SPANMETRICS.format(recv=port, prom=prom), work)
            try:
                sm.wait_ready()
                r2 = measure(
                    "spanmetrics", port, sm.telemetry, "otelcol_receiver_accepted_spans", sm.proc.pid, args, requests
                )
                with urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=5) as resp:
                    exposition = resp.read().decode()
            finally:
                sm.stop()
            calls = sum(1 for line in exposition.splitlines() if line.startswith("traces_span_metrics_calls"))
            print(
                f"spanmetrics receiver -> memory_limiter -> batch -> spanmetrics -> prometheus:\n"
                f"         {r2['spans_per_s']:,.0f} spans/s accepted ({r2['spans_per_s'] / top:.0%} of the ceiling); "
                f"collector RSS {r2['rss_mib']:.0f} MiB (peak {r2['peak_rss_mib']:.0f} MiB); "
                f"{calls} calls series exposed"
            )


if __name__ == "__main__":
    main()

"""Sustained spans/s into PostgreSQL through the durable path, next to a raw binary COPY of the same rows.

Durable path: OTLP gRPC clients (separate processes sending pre-encoded ``ExportTraceServiceRequest``s) ->
collector subprocess (otlp receiver -> postgres exporter with a ``file_storage`` persistent queue) -> PostgreSQL.
Time runs from the first request sent until every span is committed in ``spans`` (with rollups).
Ceiling: the same spans, already turned into rows, binary-COPYed straight into an identical ``spans`` table (same
indexes) in another schema of the same database, in the same run. Prints the ratio, the collector's peak RSS and
bytes on disk per span. Targets: >= 50 % of the raw COPY rate, >= 50,000 spans/s on 2 cores.

    python benchmarks/sink_throughput.py [--spans 400000] [--batch 2000] [--clients 2] [--consumers 3]
        [--write-processes 2] [--batch-min-size N] [--dsn postgresql://...]

Without --dsn the sink's embedded PostgreSQL (pgserver, with the settings ``open_database`` gives a new one) is
started in a temp dir and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

TARGET_RATIO = 0.5
TARGET_SPANS_PER_S = 50_000
_DEADLINE_S = 100.0
_CEILING_ROUNDS = 3
_ROLLED_UP_SQL = "SELECT coalesce(sum(count), 0) FROM span_rollups_1m"
_POLL_S = 0.1


# -- data ----------------------------------------------------------------------------------------------------
def make_requests(spans: int, batch: int, seed: int = 7) -> list[bytes]:
    """Serialized OTLP requests of ``batch`` spans shaped like an instrumented agent service."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    rnd = random.Random(seed)
    now_ns = time.time_ns()
    out: list[bytes] = []
    made = 0
    while made < spans:
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        for key, value in (
            ("service.name", f"svc{len(out) % 4}"),
            ("service.version", "1.4.2"),
            ("deployment.environment", "prod"),
            ("telemetry.sdk.language", "python"),
        ):
            rs.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
        ss = rs.scope_spans.add()
        ss.scope.name = "otel_metrics"
        ss.scope.version = "0.1.0"
        for _ in range(min(batch, spans - made)):
            made += 1
            span = ss.spans.add()
            span.trace_id = rnd.getrandbits(128).to_bytes(16, "big")
            span.span_id = made.to_bytes(8, "big")
            span.parent_span_id = rnd.getrandbits(64).to_bytes(8, "big")
            span.name = f"svc.op{made % 20}"
            span.kind = 2
            # Live traffic: spans that ended in the last few seconds (rollups touch the current minute).
            span.start_time_unix_nano = now_ns - rnd.randrange(0, 5 * 10**9)
            span.end_time_unix_nano = span.start_time_unix_nano + int(rnd.lognormvariate(3, 1) * 1e6)
            span.status.code = 2 if made % 50 == 0 else 1
            attrs = span.attributes
            for key, value in (
                ("correlation.id", f"req-{made // 5}"),
                ("tenant.id", f"tenant-{made % 7}"),
                ("gen_ai.agent.name", "planner"),
                ("gen_ai.request.model", "gpt-4o-mini"),
                ("http.route", "/v1/plan"),
            ):
                attrs.append(KeyValue(key=key, value=AnyValue(string_value=value)))
            attrs.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=rnd.randrange(2000))))
            attrs.append(KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue(int_value=rnd.randrange(500))))
            attrs.append(KeyValue(key="cost.usd", value=AnyValue(double_value=rnd.random() / 100)))
            attrs.append(KeyValue(key="app.step", value=AnyValue(int_value=made % 9)))
        out.append(request.SerializeToString())
    return out


# -- database ------------------------------------------------------------------------------------------------
def schema_dsn(server_dsn: str, schema: str) -> str:
    sep = "&" if "?" in server_dsn else "?"
    return f"{server_dsn}{sep}options={quote(f'-c search_path={schema}')}"


def fresh_schema(server_dsn: str, schema: str) -> str:
    import psycopg

    from collector.exporters.postgres.schema import migrate

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = schema_dsn(server_dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    return dsn


def schema_bytes(dsn: str, tables: tuple[str, ...]) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " AND (c.relname = ANY(%s) OR c.relname LIKE ANY(%s))",
            (list(tables), [f"{t}_p%" for t in tables]),
        ).fetchone()
    return int(row[0]) if row else 0


def raw_copy(dsn: str, requests: list[bytes]) -> float:
    """spans/s of a binary COPY of prebuilt rows straight into ``spans`` (the ceiling)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from collector.exporters.postgres import traces
    from collector.exporters.postgres.writer import PostgresWriter
    from processors.pipeline import Signal

    batches = [[r.row for r in traces.span_records(ExportTraceServiceRequest.FromString(data))] for data in requests]
    writer = PostgresWriter(dsn)  # creates the partitions the rows need, and the dumpers
    writer.write(Signal.TRACES, ExportTraceServiceRequest.FromString(requests[0]))
    conn = writer._connection()
    conn.execute("TRUNCATE spans, span_rollups_1m, span_rollups_1h")
    writer.ensure_partitions(conn, ("spans",), {row[4] for b in batches for row in b})
    columns = [c for c, _ in traces.SPAN_COLUMNS]
    types = [t for _, t in traces.SPAN_COLUMNS]
    total = sum(len(b) for b in batches)
    sql = f"COPY spans ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    best = 0.0
    for round_ in range(_CEILING_ROUNDS):  # best of a few: the ceiling is what the server can do at its best
        if round_:
            conn.execute("TRUNCATE spans")
        start = time.perf_counter()
        for rows in batches:
            with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        best = max(best, total / (time.perf_counter() - start))
    # Settle autovacuum's work on these rows now, so that it does not run (and count) during the durable phase.
    conn.execute("VACUUM (ANALYZE) spans")
    writer.close()
    return best


# -- collector -----------------------------------------------------------------------------------------------
def serve(config_path: str) -> None:
    """The collector subprocess: the real service from the config; prints its gRPC port."""
    from collector.config.loader import load_config
    from collector.confmap import ConfigError
    from collector.receivers.otlp import OTLPReceiver
    from collector.service import Service

    try:
        loaded = load_config(config_path)
    except (AttributeError, ImportError, ConfigError):
        import importlib

        from collector.components import Registry

        def factories(*modules: str) -> dict[str, Any]:
            return {f.type: f for m in modules for f in importlib.import_module(m).factories}

        loaded = load_config(
            config_path,
            Registry(
                receivers=factories("collector.receivers.otlp"),
                processors={},
                exporters=factories("collector.exporters.postgres"),
                connectors={},
                extensions=factories("collector.extensions.file_storage"),
            ),
            include_builtin=False,
        )

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    if os.environ.get("SINK_BENCH_DEBUG"):
        logging.getLogger("otel_metrics.collector.postgres").setLevel(logging.DEBUG)

    async def main() -> None:
        service = Service(loaded)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await service.start()
        receiver = service.node("receiver", "otlp")
        assert isinstance(receiver, OTLPReceiver)
        print(json.dumps({"grpc_port": receiver.grpc_port}), flush=True)
        await stop.wait()
        await service.shutdown(20.0)

    asyncio.run(main())


def _client(port: int, requests: list[bytes], ready: Any, go: Any) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    ready.set()
    go.wait()
    for data in requests:
        delay = 0.05
        while True:  # what OTLP clients do: retry UNAVAILABLE / RESOURCE_EXHAUSTED with backoff
            try:
                export(data, timeout=30)
                break
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
    channel.close()


def durable_path(
    dsn: str,
    requests: list[bytes],
    total: int,
    clients: int,
    workdir: Path,
    consumers: int,
    write_processes: int,
    batch_min_size: int | None,
) -> dict[str, Any]:
    import psutil
    import psycopg

    config = workdir / "otel-collector.yaml"
    telemetry_port = _free_port()
    # The exporter's own sending_queue::batch defaults unless asked otherwise.
    batch = (
        ""
        if batch_min_size is None
        else f"      batch:\n        min_size: {batch_min_size}\n        max_size: {max(batch_min_size, 1) * 2}\n"
    )
    config.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 64
extensions:
  file_storage:
    directory: {workdir / "queue"}
exporters:
  postgres:
    dsn: "{dsn}"
    retention_check_interval: 0
    write_processes: {write_processes}
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 2s
    sending_queue:
      storage: file_storage
      num_consumers: {consumers}
      queue_size: 1000
{batch}service:
  telemetry:
    metrics:
      address: 127.0.0.1:{telemetry_port}
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [postgres]
"""
    )
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(config)],
        stdout=subprocess.PIPE,
        stderr=(workdir / "collector.log").open("w"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("{"):  # e.g. a profiler's banner
            line = proc.stdout.readline()
        if not line:
            raise SystemExit("collector did not start:\n" + (workdir / "collector.log").read_text()[-3000:])
        port = int(json.loads(line)["grpc_port"])
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        workers = []
        for i in range(clients):
            ready = ctx.Event()
            p = ctx.Process(target=_client, args=(port, requests[i::clients], ready, go))
            p.start()
            ready.wait(60)
            workers.append(p)
        collector = psutil.Process(proc.pid)
        profile = os.environ.get("SINK_BENCH_PYSPY")  # collapsed stacks of the collector (needs py-spy)
        profiler = None
        if profile:
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--format",
                    "raw",
                    "--threads",
                    "-r",
                    "50",
                    "-d",
                    "8",
                    "--nonblocking",
                    "-o",
                    profile,
                    "--pid",
                    str(proc.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        peak_rss = 0
        queue_peak = 0
        pg_procs = _postgres_processes(dsn)
        collector_procs = [collector, *collector.children(recursive=True)]  # with its write processes
        cpu_before = _cpu([*collector_procs, *(psutil.Process(w.pid) for w in workers)])
        pg_before = _postgres_cpu(pg_procs)
        start = time.perf_counter()
        go.set()
        stored = 0
        # Progress from the collector's own otelcol_exporter_sent_spans (counted after each commit): a scrape
        # costs the collector ~1 ms. Counting in PostgreSQL (count(*) on spans, or summing the rollups, whose
        # partial rows pile up until compaction) took 5-50 ms a poll from the system under test.
        while stored < total:
            peak_rss = max(peak_rss, _rss(collector_procs))
            queue_peak = max(queue_peak, _dir_bytes(workdir / "queue"))
            stored = _sent_spans(telemetry_port)
            if time.perf_counter() - start > _DEADLINE_S:
                break
            time.sleep(_POLL_S)
        elapsed = time.perf_counter() - start
        pg_after = _postgres_cpu(pg_procs)
        cpu_after = _cpu([*collector_procs, *(psutil.Process(w.pid) for w in workers)])
        with psycopg.connect(dsn, autocommit=True) as conn:  # after the clock: the rows themselves
            row = conn.execute("SELECT (SELECT count(*) FROM spans), (" + _ROLLED_UP_SQL + ")").fetchone()
            rows_stored, rolled_up = (int(row[0]), int(row[1])) if row else (0, 0)
        if not rows_stored == rolled_up == stored:  # what the exporter reported must be what the tables hold
            print(f"WARNING: sent {stored:,}; spans has {rows_stored:,} rows; the 1m rollups count {rolled_up:,}")
            stored = min(stored, rows_stored)
        cpu = {
            "collector": sum(cpu_after.get(q.pid, 0) - cpu_before.get(q.pid, 0) for q in collector_procs),
            "collector main process": cpu_after.get(collector.pid, 0) - cpu_before.get(collector.pid, 0),
            "postgres": sum(pg_after.values()) - sum(pg_before.values()),
            "clients": sum(cpu_after.get(w.pid or 0, 0) - cpu_before.get(w.pid or 0, 0) for w in workers),
        }
        for p in workers:
            p.join(30)
        if profiler is not None:
            profiler.wait(30)
        return {
            "stored": stored,
            "elapsed_s": elapsed,
            "spans_per_s": stored / elapsed,
            "peak_rss_mib": peak_rss / 2**20,
            "queue_peak_mib": queue_peak / 2**20,
            "cpu_s": cpu,
            "postgres_cpu_s": {k: v - pg_before.get(k, 0.0) for k, v in pg_after.items()},
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sent_spans(port: int) -> int:
    """otelcol_exporter_sent_spans of the postgres exporter, from the collector's Prometheus endpoint."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_exporter_sent_spans") and 'exporter="postgres"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _postgres_processes(dsn: str) -> list[Any]:
    """The server's postmaster and all its children (backends, WAL writer, checkpointer...), when local."""
    import psutil
    import psycopg

    try:
        with psycopg.connect(dsn) as conn:  # the backend lives only as long as this connection
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            backend = psutil.Process(int(row[0])) if row else None
            postmaster = backend.parent() if backend else None
    except Exception:  # a remote server: its CPU is not ours to measure
        return []
    if postmaster is None:
        return []
    return [postmaster, *postmaster.children()]


def _postgres_cpu(processes: list[Any]) -> dict[str, float]:
    """CPU seconds of the server by kind of process. Autovacuum workers come and go: the CPU of children that
    exited is in the postmaster's children times (and anything else that exited is counted there too)."""
    out: dict[str, float] = {}
    if not processes:
        return out
    postmaster = processes[0]
    try:
        t = postmaster.cpu_times()
        out["exited (autovacuum workers, ...)"] = t.children_user + t.children_system
        out["postmaster"] = t.user + t.system
        children = postmaster.children()
    except Exception:  # the server is gone: nothing more to read
        return out
    for child in children:
        try:
            name = " ".join(child.cmdline())
            t = child.cpu_times()
        except Exception:  # exited between listing and reading: counted with the exited ones next time
            continue
        kind = "backends"
        for key in ("autovacuum", "walwriter", "checkpointer", "background writer", "logger"):
            if key in name:
                kind = key
        out[kind] = out.get(kind, 0.0) + t.user + t.system
    return out


def _rss(processes: list[Any]) -> int:
    total = 0
    for proc in processes:
        with contextlib.suppress(Exception):  # exited: nothing resident
            total += proc.memory_info().rss
    return total


def _cpu(processes: list[Any]) -> dict[int, float]:
    """CPU seconds (user + system) per pid, skipping processes that are gone."""
    out = {}
    for proc in processes:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except Exception:  # exited between listing and reading: nothing to count
            pass
    return out


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a segment deleted while walking
                total += os.path.getsize(os.path.join(root, name))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=2000, help="spans per OTLP request")
    parser.add_argument("--clients", type=int, default=2, help="OTLP gRPC client processes")
    parser.add_argument("--consumers", type=int, default=3, help="sending_queue.num_consumers (connections)")
    parser.add_argument(
        "--batch-min-size",
        type=int,
        default=None,
        help="sending_queue.batch.min_size, spans per transaction (default: the exporter's, 8192)",
    )
    parser.add_argument("--write-processes", type=int, default=2, help="postgres exporter write_processes (0: threads)")
    parser.add_argument("--dsn", default=None, help="postgresql:// URL (default: embedded pgserver in a temp dir)")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    workdir = Path(tempfile.mkdtemp(prefix="otel-sink-bench-"))
    server = None
    try:
        if args.dsn:
            server_dsn = args.dsn
        else:
            from collector.exporters.postgres.config import PostgresExporterConfig
            from collector.exporters.postgres.database import open_database

            server = open_database(PostgresExporterConfig(data_dir=str(workdir / "pg")))
            server_dsn = server.dsn
        print(f"generating {args.spans:,} spans in requests of {args.batch} ...", flush=True)
        requests = make_requests(args.spans, args.batch)
        raw_dsn = fresh_schema(server_dsn, "bench_raw")
        durable_dsn = fresh_schema(server_dsn, "bench_durable")

        ceiling = raw_copy(raw_dsn, requests)
        print(f"raw binary COPY (ceiling, best of {_CEILING_ROUNDS}): {ceiling:>10,.0f} spans/s", flush=True)
        result = durable_path(
            durable_dsn,
            requests,
            args.spans,
            args.clients,
            workdir,
            args.consumers,
            args.write_processes,
            args.batch_min_size,
        )
        rate = result["spans_per_s"]
        raw_tables = ("spans",)
        sink_tables = ("spans", "span_events", "span_links", "span_rollups_1m", "span_rollups_1h")
        bytes_raw = schema_bytes(raw_dsn, raw_tables) / args.spans
        bytes_sink = schema_bytes(durable_dsn, sink_tables) / max(result["stored"], 1)
        print(
            f"durable path (OTLP gRPC -> persistent queue -> postgres): {rate:>10,.0f} spans/s "
            f"({result['stored']:,} spans in {result['elapsed_s']:.1f}s)"
        )
        ratio = rate / ceiling
        print(f"ratio durable / raw COPY:    {ratio:>10.2f}   (target >= {TARGET_RATIO:.2f})")
        print(
            f"spans/s vs target:           {rate:>10,.0f}   (target >= {TARGET_SPANS_PER_S:,} on 2 cores;"
            f" this machine: {os.cpu_count()} cores)"
        )
        cpu = result["cpu_s"]
        pg_parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["postgres_cpu_s"].items()) if abs(v) >= 0.05)
        print(
            f"CPU seconds during the run:  collector {cpu['collector']:.1f}, postgres {cpu['postgres']:.1f},"
            f" clients {cpu['clients']:.1f} (wall {result['elapsed_s']:.1f}s x {os.cpu_count()} cores)"
        )
        print(f"  postgres by process:       {pg_parts}")
        if args.write_processes:
            main_cpu = cpu["collector main process"]
            print(
                f"  collector: main process {main_cpu:.1f} (receiver, queue), write processes"
                f" {cpu['collector'] - main_cpu:.1f}"
            )
        stored = max(result["stored"], 1)
        per_span = {k: v / stored * 1e6 for k, v in cpu.items()}
        total_us = per_span["collector"] + per_span["postgres"] + per_span["clients"]
        cores = os.cpu_count() or 1
        print(
            f"CPU per span: collector {per_span['collector']:.1f} us, postgres {per_span['postgres']:.1f} us,"
            f" clients {per_span['clients']:.0f} us -> {cores} cores busy all the time would give"
            f" ~{cores * 1e6 / max(total_us, 1):,.0f} spans/s"
        )
        print(f"collector peak RSS (with write processes):          {result['peak_rss_mib']:>10.0f} MiB")
        print(f"persistent queue peak:       {result['queue_peak_mib']:>10.1f} MiB on disk")
        print(
            f"bytes on disk per span:      {bytes_sink:>10.0f} (sink: spans + rollups + indexes);"
            f" raw COPY table: {bytes_raw:.0f}"
        )
        if result["stored"] < args.spans:
            print(f"WARNING: only {result['stored']:,} of {args.spans:,} spans stored within {_DEADLINE_S:.0f}s")
    finally:
        if server is not None:
            server.close()
        if os.environ.get("SINK_BENCH_KEEP"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Issue 12's attacks, replayed one after another against the shipped ``otel-collector.yaml``, and its "Done when"
checked: accepting normal traffic within seconds, RSS under ``limit_mib``, nothing secret on disk, every
acknowledged item delivered once.

    flock /tmp/bench.lock nice -n 10 .venv/bin/python benchmarks/attack_replay.py

The collector runs as users run it, ``python -m collector --config otel-collector.yaml``: the shipped file with only
its ports moved to free loopback ports (the four it spells out rewritten in its text, the OTLP ones through
``OTEL_METRICS_GRPC_ENDPOINT`` / ``OTEL_METRICS_HTTP_ENDPOINT``) and its storage in a temp dir
(``OTEL_METRICS_QUEUE_DIR``, ``OTEL_METRICS_DATA_DIR``): memory_limiter (``limit_mib`` 512 unless
``OTEL_METRICS_MEMORY_LIMIT_MIB`` says otherwise), the default processors, redaction, spanmetrics, file_storage
queues and the postgres sink on an embedded PostgreSQL. The attacks:

1. 100,000 spans with distinct names in one ~6 MB OTLP/HTTP request, then 100,000 more in 25 gRPC requests of 4,000
   (a refused one sent again after 1 s, as OTLP clients do);
2. a 256 MiB body declared to ``/metrics`` (the telemetry and the prometheus exporter's); 500 connections trickling
   header bytes to the OTLP/HTTP receiver (held until the server closes them);
3. 200 spans dated on 200 future days, one dated 2554 and one 1970: partitions created, and where they went;
4. the secrets corpus of ``tests/collector/exporters/postgres/secrets_corpus.yaml`` in every attribute-bearing field
   of spans, logs and metrics, and the issue's log body; once stored, a CHECKPOINT, then every file under the
   PostgreSQL data directory and the queue directory and the collector's log are searched, bytes, for each planted
   secret (and the sink's tables as text, which also sees values PostgreSQL stored compressed);
5. 48 unthrottled gRPC clients sending just-under-4 MiB requests for 15 s, while a 20 MiB OTLP/JSON and a 20 MiB
   protobuf request are sent over HTTP (each retried after a refusal, as an OTLP client does, until accepted);
6. OTLP/JSON nested 10,000 deep (expect 400); a lowercase ``bearer`` scheme, only when the config has auth.

After each attack: the seconds until a normal request (512 spans over gRPC) is accepted again. Per attack: the
collector's peak RSS, its exact high-water mark (``VmHWM``, reset at each attack's start through
``/proc/<pid>/clear_refs``). At the end: every span and log record a client was told was accepted is stored
exactly once (in its table or, attack 3, in ``quarantine``) and nothing refused is stored; trace ids carry the
run, the request and the item, so rows are counted per request.

Printed: a line per attack as it ends, then the table attack | accepted/refused | peak RSS (MiB, x limit_mib) |
seconds to accept normal traffic | a pass/fail per Done-when clause. Exits 1 when a clause fails.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import grpc  # noqa: E402
import httpx  # noqa: E402
import psycopg  # noqa: E402
import yaml  # noqa: E402
from memory_limiter_overload import _free_port  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from collector.confmap.sections import component_config  # noqa: E402
from collector.exporters.postgres.database import connect_from_config, detach_all  # noqa: E402
from processors._attributes import set_attribute  # noqa: E402
from processors.memory_limiter import MemoryLimiterConfig  # noqa: E402
from processors.pdata import to_json  # noqa: E402
from tests.collector.exporters.postgres.test_secrets_at_rest import (  # noqa: E402
    Corpus,
    _leaks,
    _logs,
    _metrics,
    _traces,
)

MIB = 1 << 20
DAY_NS = 86_400 * 10**9
MARK = b"\xa5\x5a\xc3\x3c"  # bytes 4-8 of every trace id in a request template: replaced by the request's number
RECOVERY_BOUND_S = 10.0  # "accepting normal traffic within seconds"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SERVICES = {s: f"/opentelemetry.proto.collector.{s}.v1.{s.title()}Service/Export" for s in ("trace", "logs", "metrics")}
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclass
class Row:
    attack: str
    accepted: list[int] = field(default_factory=lambda: [0, 0])  # requests, items
    refused: list[int] = field(default_factory=lambda: [0, 0])
    unknown: int = 0  # requests without an answer (deadline): excluded from the delivery check
    peak_mib: float = 0.0
    recovery_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    delivered: str = "-"
    secrets: str = "-"


class Ledger:
    """Numbers every request (its trace ids carry the run's tag and the number) and records what it was told."""

    def __init__(self) -> None:
        self.tag = os.urandom(4)
        self.row = Row("")
        self.sent: dict[int, tuple[Row, int, str]] = {}  # request -> (attack, items, outcome)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def trace_id(self, i: int) -> bytes:
        return self.tag + MARK + i.to_bytes(8, "big")

    def numbered(self, template: bytes) -> tuple[int, bytes]:
        n = next(self._numbers)
        if template.startswith(b"{"):
            return n, template.replace(MARK.hex().encode(), n.to_bytes(4, "big").hex().encode())
        return n, template.replace(MARK, n.to_bytes(4, "big"))

    def record(self, n: int, items: int, outcome: str) -> None:
        with self._lock:
            self.sent[n] = (self.row, items, outcome)
            if outcome == "unknown":
                self.row.unknown += 1
            else:
                counts = self.row.accepted if outcome == "accepted" else self.row.refused
                counts[0] += 1
                counts[1] += items

    def grpc(self, export: Any, template: bytes, items: int, timeout: float = 60) -> bool:
        n, body = self.numbered(template)
        try:
            export(body, timeout=timeout)
            self.record(n, items, "accepted")
            return True
        except grpc.RpcError as exc:
            code = exc.code()
            self.record(n, items, "unknown" if code is grpc.StatusCode.DEADLINE_EXCEEDED else "refused")
            if code not in RETRYABLE:
                self.row.notes.append(f"gRPC {code.name}: {(exc.details() or '')[:80]}")
            return False

    def http(self, client: httpx.Client, url: str, template: bytes, items: int, content_type: str) -> int:
        n, body = self.numbered(template)
        try:
            status = client.post(url, content=body, headers={"Content-Type": content_type}).status_code
        except httpx.TimeoutException:
            self.record(n, items, "unknown")
            return 0
        except httpx.TransportError:  # closed unanswered (a connection over the cap): nothing was accepted
            status = -1
        self.record(n, items, "accepted" if status == 200 else "refused")
        return status


def _export(endpoint: str, service: str = "trace") -> Any:
    """An OTLP/gRPC Export over raw bytes, on a channel (a connection) of its own."""
    return grpc.insecure_channel(endpoint).unary_unary(
        SERVICES[service], request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


def _spans(
    ledger: Ledger,
    count: int,
    name: Callable[[int], str],
    start: Callable[[int], int],
    payload: int = 0,
    service: str = "attack-replay",
    attributes: bool = True,
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    set_attribute(rs.resource.attributes, "service.name", service)
    ss = rs.scope_spans.add()
    ss.scope.name = "attack-replay"
    for i in range(count):
        t = start(i)
        span = ss.spans.add(
            name=name(i), trace_id=ledger.trace_id(i), span_id=(i + 1).to_bytes(8, "big"), kind=2,
            start_time_unix_nano=t, end_time_unix_nano=t + 1_000_000,
        )  # fmt: skip
        if attributes:
            set_attribute(span.attributes, "http.route", f"/api/{i % 20}")
            set_attribute(span.attributes, "http.response.status_code", 200)
        if payload:
            set_attribute(span.attributes, "payload", "x" * payload)
    return req


def _fit(build: Callable[[int], bytes], target: int) -> tuple[bytes, int]:
    """The largest body ``build(spans)`` makes under ``target`` bytes, and its span count."""
    sample = 1000
    spans = int(target / (len(build(sample)) / sample))
    body = build(spans)
    while len(body) >= target:
        spans = int(spans * 0.995)
        body = build(spans)
    return body, spans


def _now(i: int) -> int:
    return time.time_ns() - 60 * 10**9


class Collector:
    """``python -m collector --config <the shipped file, ports and directories moved>`` in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {n: _free_port() for n in ("grpc", "http", "health", "api", "prometheus", "telemetry")}
        text = (ROOT / "otel-collector.yaml").read_text()
        for old, new in (
            ("endpoint: localhost:13133", f"endpoint: localhost:{self.ports['health']}"),
            ("endpoint: localhost:8890", f"endpoint: localhost:{self.ports['api']}"),
            ("endpoint: localhost:8889", f"endpoint: localhost:{self.ports['prometheus']}"),
            ("port: 8888", f"port: {self.ports['telemetry']}"),
        ):
            assert text.count(old) == 1, f"the shipped config no longer has exactly one {old!r}"
            text = text.replace(old, new)
        self.config = tmp / "otel-collector.yaml"
        self.config.write_text(text)
        self.queue_dir, self.data_dir = tmp / "queues", tmp / "postgres"
        os.environ.update(  # this process reads the same config to find the database
            OTEL_METRICS_QUEUE_DIR=str(self.queue_dir),
            OTEL_METRICS_DATA_DIR=str(self.data_dir),
            OTEL_METRICS_GRPC_ENDPOINT=f"localhost:{self.ports['grpc']}",
            OTEL_METRICS_HTTP_ENDPOINT=f"localhost:{self.ports['http']}",
        )
        limiter = component_config(self.config, "processors", "memory_limiter", MemoryLimiterConfig)
        assert limiter is not None
        self.limit_mib = limiter.limit_mib
        self.has_auth = "bearertokenauth" in (yaml.safe_load(text)["service"].get("extensions") or [])
        self.log = tmp / "collector.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector", "--config", str(self.config)], cwd=tmp, stderr=err
            )
        deadline = time.monotonic() + 180
        while "collector started" not in self.log.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise SystemExit(f"collector did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.grpc_endpoint = f"127.0.0.1:{self.ports['grpc']}"
        self.http_url = f"http://127.0.0.1:{self.ports['http']}"

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def peak_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def _probe(c: Collector, ledger: Ledger, since: float, deadline_s: float = 120) -> float:
    """Seconds from ``since`` until a normal request (512 spans over gRPC) is accepted."""
    template = _spans(ledger, 512, lambda i: f"GET /api/{i % 20}", _now, service="replay-probe").SerializeToString()
    export = _export(c.grpc_endpoint)
    while not ledger.grpc(export, template, 512, timeout=10):
        if time.monotonic() - since > deadline_s:
            return float("inf")
        time.sleep(0.1)
    return time.monotonic() - since


@contextmanager
def _attack(c: Collector, ledger: Ledger, conn: psycopg.Connection[Any], rows: list[Row], name: str) -> Iterator[Row]:
    """Runs one attack: its peak RSS covers it, the probe after it, and the sink's work on what it was accepted
    (waited for, so the next attack starts from an empty queue)."""
    row = ledger.row = Row(name)
    c.reset_peak()
    yield row
    row.recovery_s = _probe(c, ledger, time.monotonic())
    t0 = time.monotonic()
    accepted = [n for n, (r, _, outcome) in ledger.sent.items() if r is row and outcome == "accepted"]
    drained = _wait_stored(conn, ledger, accepted, 180)
    row.notes.append(f"stored {'in' if drained else 'NOT within'} {time.monotonic() - t0:.1f} s after the probe")
    row.peak_mib = c.peak_mib()
    rows.append(row)
    print(
        f"{name}: accepted {row.accepted[0]} requests ({row.accepted[1]} items), refused {row.refused[0]} "
        f"({row.refused[1]}), peak RSS {row.peak_mib:.0f} MiB, normal traffic accepted after {row.recovery_s:.1f} s"
        + "".join(f"\n    {note}" for note in row.notes),
        flush=True,
    )


def distinct_names(c: Collector, ledger: Ledger) -> None:
    """As the issue sent them: spans with nothing but distinct names; a refused gRPC request is sent again after 1 s
    (as OTLP clients honour Retry-After), for a minute at most."""
    body = _spans(ledger, 100_000, lambda i: f"name-{i:06d}", _now, attributes=False).SerializeToString()
    with httpx.Client(timeout=300) as client:
        status = ledger.http(client, f"{c.http_url}/v1/traces", body, 100_000, PROTOBUF)
    ledger.row.notes.append(f"OTLP/HTTP {len(body) / 1e6:.1f} MB, 100,000 names: {status}")
    export = _export(c.grpc_endpoint)
    deadline = time.monotonic() + 60
    for k in range(25):
        names = [f"grpc-name-{k * 4000 + i:06d}" for i in range(4000)]
        template = _spans(ledger, 4000, names.__getitem__, _now, attributes=False).SerializeToString()
        while not ledger.grpc(export, template, 4000) and time.monotonic() < deadline:
            time.sleep(1)


def _declared_body(port: int) -> str:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (256 * MIB))
        status = sock.recv(64).split(b"\r\n")[0].decode()
        elapsed = (time.perf_counter() - t0) * 1000
        sent = 0
        try:  # the body anyway, until the server's close stops us
            for _ in range(256):
                sock.sendall(b"\0" * MIB)
                sent += 1
        except OSError:
            pass
    return f"{status!r} in {elapsed:.0f} ms, {sent} MiB of the body sent before the close"


def _ended(sock: socket.socket) -> str | None:
    """How the server ended a trickling connection ("503" at once, or "closed"); None: still open, one more byte
    sent."""
    try:
        data = sock.recv(4096)
        return "503" if data.startswith(b"HTTP/1.1 503") else "closed" if not data else "other"
    except BlockingIOError:
        pass
    except OSError:
        return "closed"
    try:
        sock.send(b"X")
    except OSError:
        return "closed"
    return None


def _trickle(port: int, count: int, seconds: float) -> tuple[Counter[str], float]:
    """``count`` connections sending a header byte every 0.5 s until the server ends them (or ``seconds``): how
    each ended, and when the last was."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    t0 = time.monotonic()
    for sock in socks:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
    ends: Counter[str] = Counter()
    open_ = list(socks)
    while open_ and time.monotonic() - t0 < seconds:
        results = [(sock, _ended(sock)) for sock in open_]
        ends.update(end for _, end in results if end is not None)
        open_ = [sock for sock, end in results if end is None]
        time.sleep(0.5)
    ends["still open"] = len(open_)
    for sock in socks:
        sock.close()
    return ends, time.monotonic() - t0


def listeners(c: Collector, ledger: Ledger) -> None:
    for name in ("telemetry", "prometheus"):
        ledger.row.notes.append(f"/metrics ({name}) with 256 MiB declared: {_declared_body(c.ports[name])}")
    result: dict[str, Any] = {}
    trickling = threading.Thread(target=lambda: result.update(trickle=_trickle(c.ports["http"], 500, 60)))
    t0 = time.monotonic()
    trickling.start()
    time.sleep(1)  # the connections are open and held
    grpc_s = _probe(c, ledger, t0)
    template = _spans(ledger, 512, lambda i: f"GET /api/{i % 20}", _now, service="replay-probe").SerializeToString()
    with httpx.Client(timeout=30) as client:
        while ledger.http(client, f"{c.http_url}/v1/traces", template, 512, PROTOBUF) != 200:
            time.sleep(0.2)
    http_s = time.monotonic() - t0
    trickling.join()
    ends, took = result["trickle"]
    ledger.row.notes.append(f"500 trickling connections: {dict(ends)}, the last ended by the server after {took:.1f} s")
    ledger.row.notes.append(
        f"while they were held: gRPC accepted after {grpc_s:.1f} s, OTLP/HTTP after {http_s:.1f} s of the trickle"
    )


def _rows_by_request(conn: psycopg.Connection[Any], ledger: Ledger) -> dict[int, int]:
    """Stored items per request number: spans, quarantined spans and log records of this run."""
    stored: dict[int, int] = {}
    for table, where in (
        ("spans", "true"),
        ("quarantine", "signal = 'traces' AND action = 'quarantined'"),
        ("logs", "true"),
    ):
        query = (
            f"SELECT substring(trace_id from 5 for 4), count(DISTINCT (trace_id, span_id)), count(*) FROM {table}"
            f" WHERE {where} AND substring(trace_id from 1 for 4) = %s GROUP BY 1"
        )
        for request, distinct, rows in conn.execute(query, (ledger.tag,)).fetchall():
            n = int.from_bytes(request, "big")
            # a duplicate row counts twice, so it shows as more than was sent
            stored[n] = stored.get(n, 0) + int(rows) + (int(rows) - int(distinct))
    return stored


def _wait_stored(conn: psycopg.Connection[Any], ledger: Ledger, requests: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        stored = _rows_by_request(conn, ledger)
        if all(stored.get(n, 0) >= ledger.sent[n][1] for n in requests):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def clocks(c: Collector, ledger: Ledger, conn: psycopg.Connection[Any]) -> None:
    now = time.time_ns()
    partitions = "SELECT count(*) FROM otel_partitions"
    relations = "SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
    before = [conn.execute(q).fetchone()[0] for q in (partitions, relations)]  # type: ignore[index]
    export = _export(c.grpc_endpoint)
    first = len(ledger.sent) + 1
    ledger.grpc(
        export, _spans(ledger, 200, lambda i: "future-day", lambda i: now + (i + 1) * DAY_NS).SerializeToString(), 200
    )
    year_2554 = 2**64 - 3600 * 10**9  # the last hour a uint64 of nanoseconds holds
    ledger.grpc(export, _spans(ledger, 1, lambda i: "year-2554", lambda i: year_2554).SerializeToString(), 1)
    ledger.grpc(export, _spans(ledger, 1, lambda i: "year-1970", lambda i: 10**9).SerializeToString(), 1)
    requests = [n for n in range(first, len(ledger.sent) + 1) if ledger.sent[n][2] == "accepted"]
    if not _wait_stored(conn, ledger, requests, 60):
        ledger.row.notes.append("not all stored or quarantined within 60 s")
    after = [conn.execute(q).fetchone()[0] for q in (partitions, relations)]  # type: ignore[index]
    ids = [ledger.tag + n.to_bytes(4, "big") for n in requests]
    reasons = conn.execute(
        "SELECT regexp_replace(reason, '[0-9][0-9:. T+-]*[0-9]', '#', 'g'), count(*) FROM quarantine"
        " WHERE substring(trace_id from 1 for 8) = ANY(%s) GROUP BY 1 ORDER BY 2 DESC",
        (ids,),
    ).fetchall()
    stored = conn.execute(
        "SELECT count(*) FROM spans WHERE substring(trace_id from 1 for 8) = ANY(%s)", (ids,)
    ).fetchone()
    ledger.row.notes.append(
        f"partitions {before[0]} -> {after[0]}, relations {before[1]} -> {after[1]}; of 202 spans "
        f"{stored[0] if stored else '?'} stored, quarantined: "
        + "; ".join(f"{n} x {reason[:90]!r}" for reason, n in reasons)
    )


def _scan(paths: list[Path], corpus: Corpus) -> tuple[list[str], int, int]:
    """Planted secrets found in the bytes of every file under ``paths``; files and bytes read. The corpus's generated
    secrets share one shape, found by a regex and looked up; the literals are searched one by one."""
    shaped = re.compile(rb"Zq[0-9]{4}[0-9a-f]{16}")
    planted = {s.encode(): place for s, place in corpus.planted.items()}
    literals = [s for s in planted if not shaped.fullmatch(s)]
    found: dict[bytes, str] = {}
    files = size = 0
    for root in paths:
        for path in (p for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()):
            data = path.read_bytes()
            files, size = files + 1, size + len(data)
            for m in shaped.finditer(data):
                if m.group() in planted:
                    found[m.group()] = f"{planted[m.group()]} in {path}"
            found.update({s: f"{planted[s]} in {path}" for s in literals if s in data})
    return sorted(found.values()), files, size


def _tables_text(conn: psycopg.Connection[Any], pattern: str) -> str:
    """Every row of every table of the sink, as text, that matches ``pattern`` (PostgreSQL's regex)."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    ]
    parts = []
    for table in tables:
        row = conn.execute(f"SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t WHERE t::text ~ %s", (pattern,))
        parts.append((row.fetchone() or [""])[0] or "")
    return "\n".join(parts)


def secrets_at_rest(c: Collector, ledger: Ledger, conn: psycopg.Connection[Any]) -> list[str]:
    corpus = Corpus()
    now = time.time_ns()
    traces, logs, metrics = _traces(corpus, now), _logs(corpus, now), _metrics(corpus, now)
    for i, span in enumerate(traces.resource_spans[0].scope_spans[0].spans):
        span.trace_id = ledger.trace_id(i)
    canary = f"replay-canary-{secrets.token_hex(6)}"
    token = f"abc{secrets.token_hex(12)}"
    issue_body = f"{canary}: login failed, password=hunter2 for bob, retrying with Bearer {token}"
    corpus.planted.update({"hunter2": "the issue's log body", token: "the issue's log body, Bearer"})
    records = logs.resource_logs[0].scope_logs[0].log_records
    records.add(time_unix_nano=now, severity_number=17).body.string_value = issue_body
    for i, record in enumerate(records):
        record.trace_id, record.span_id = ledger.trace_id(i), (i + 1).to_bytes(8, "big")
    first = len(ledger.sent) + 1
    ledger.grpc(
        _export(c.grpc_endpoint), traces.SerializeToString(), len(traces.resource_spans[0].scope_spans[0].spans)
    )
    ledger.grpc(_export(c.grpc_endpoint, "logs"), logs.SerializeToString(), len(records))
    ledger.grpc(_export(c.grpc_endpoint, "metrics"), metrics.SerializeToString(), 0)
    requests = [n for n in range(first, len(ledger.sent) + 1) if ledger.sent[n][2] == "accepted"]
    stored = _wait_stored(conn, ledger, requests, 120)
    deadline = time.monotonic() + 60
    points = "SELECT count(*) FROM metric_points WHERE metric_name IN ('secrets.gauge', 'secrets.duration')"
    while conn.execute(points).fetchone() != (2,) and time.monotonic() < deadline:
        time.sleep(0.5)
    conn.execute("CHECKPOINT")
    t0 = time.monotonic()
    leaks, files, size = _scan([c.data_dir, c.queue_dir, c.log], corpus)
    pattern = "Zq[0-9]{4}[0-9a-f]{16}|" + "|".join(re.escape(s) for s in corpus.planted if not s.startswith("Zq"))
    leaks += [f"{leak} in a table" for leak in _leaks(_tables_text(conn, pattern), corpus)]
    canary_on_disk = bool(_scan([c.data_dir], _only(canary))[0])
    ledger.row.notes.append(
        f"{len(corpus.planted)} secrets planted; {'all' if stored else 'NOT all'} stored; {files} files, "
        f"{size / MIB:.0f} MiB and the tables searched in {time.monotonic() - t0:.1f} s: {len(leaks)} found"
        f"; the log body's canary {'found' if canary_on_disk else 'NOT found'} in the data directory's bytes"
    )
    ledger.row.notes.extend(leaks[:10])
    return leaks


def _only(value: str) -> Corpus:
    corpus = Corpus()
    corpus.planted = {value: "canary"}
    return corpus


def _big_http(c: Collector, ledger: Ledger, body: bytes, spans: int, content_type: str, until: float) -> str:
    """Sends ``body`` until it is accepted (a refusal retried after 1 s, as Retry-After asks) or ``until``."""
    tries: list[int] = []
    with httpx.Client(timeout=300) as client:
        while time.monotonic() < until:
            t0 = time.monotonic()
            tries.append(ledger.http(client, f"{c.http_url}/v1/traces", body, spans, content_type))
            if tries[-1] == 200:
                refusals = f"{len(tries) - 1} refusals ({set(tries[:-1]) or ''})"
                return f"accepted after {refusals}, in {time.monotonic() - t0:.1f} s"
            time.sleep(1)
    return f"NOT accepted: {len(tries)} refusals ({set(tries)})"


def flood(c: Collector, ledger: Ledger, clients: int, seconds: float) -> None:
    grpc_body, grpc_spans = _fit(
        lambda n: _spans(ledger, n, lambda i: f"flood-{i % 50}", _now, payload=900).SerializeToString(),
        4 * MIB - 64 * 1024,
    )

    def big_body(n: int, as_json: bool) -> bytes:
        message = _spans(ledger, n, lambda i: f"big-{i % 50}", _now, payload=64)
        return to_json(message) if as_json else message.SerializeToString()

    big = {
        "json": _fit(lambda n: big_body(n, True), 20 * MIB - 64 * 1024),
        "protobuf": _fit(lambda n: big_body(n, False), 20 * MIB - 64 * 1024),
    }
    stop = threading.Event()
    results: dict[str, str] = {}

    def client() -> None:
        export = _export(c.grpc_endpoint)
        while not stop.is_set():
            ledger.grpc(export, grpc_body, grpc_spans)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    end = time.monotonic() + seconds

    def big_client(kind: str) -> None:
        body, spans = big[kind]
        results[kind] = _big_http(c, ledger, body, spans, JSON if kind == "json" else PROTOBUF, end + 60)

    threads += [threading.Thread(target=big_client, args=(kind,)) for kind in big]
    for t in threads:
        t.start()
    while time.monotonic() < end:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(120)
    ledger.row.notes.append(
        f"{clients} gRPC clients x {seconds:.0f} s of {len(grpc_body) / MIB:.2f} MiB requests ({grpc_spans} spans)"
    )
    for kind, (body, spans) in big.items():
        ledger.row.notes.append(f"{kind} {len(body) / MIB:.2f} MiB ({spans} spans): {results.get(kind)}")


def _nested(depth: int) -> bytes:
    """OTLP/JSON whose one span attribute is a kvlist nested ``depth`` deep."""
    inner = '{"stringValue":"x"}'
    value = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + inner + "}]}}" * depth
    return (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
        + "ab" * 16
        + '","spanId":"'
        + "cd" * 8
        + '","name":"deep","attributes":[{"key":"deep","value":'
        + value
        + "}]}]}]}]}"
    ).encode()


def hostile_input(c: Collector, ledger: Ledger) -> None:
    with httpx.Client(timeout=60) as client:
        for name, body in (
            ("OTLP kvlist nested 10,000 deep", _nested(10_000)),
            ('{"a": x 10,000', b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        ):
            response = client.post(f"{c.http_url}/v1/traces", content=body, headers={"Content-Type": JSON})
            counts = ledger.row.accepted if response.status_code == 200 else ledger.row.refused
            counts[0], counts[1] = counts[0] + 1, counts[1] + 1
            ledger.row.notes.append(f"{name}: {response.status_code} {response.text[:80]!r}")
    if not c.has_auth:
        ledger.row.notes.append("lowercase `bearer`: skipped, the shipped config has no authenticator on the receiver")


def delivered(conn: psycopg.Connection[Any], ledger: Ledger, seconds: float) -> None:
    """Waits (polling, ``seconds`` at most) until every accepted request's items are stored, then sets each
    attack's verdict: every acknowledged item stored once, nothing refused stored."""
    accepted = [n for n, (_, _, outcome) in ledger.sent.items() if outcome == "accepted"]
    t0 = time.monotonic()
    complete = _wait_stored(conn, ledger, accepted, seconds)
    stored = _rows_by_request(conn, ledger)
    print(f"stored: {'complete' if complete else 'INCOMPLETE'} {time.monotonic() - t0:.1f} s after the last attack")
    verdicts: dict[int, list[int]] = {}  # id(row) -> [acknowledged, missing, duplicated, refused but stored]
    for n, (row, items, outcome) in ledger.sent.items():
        v = verdicts.setdefault(id(row), [0, 0, 0, 0])
        got = stored.get(n, 0)
        if outcome == "accepted":
            v[0] += items
            v[1] += max(items - got, 0)
            v[2] += max(got - items, 0)
        elif outcome == "refused":
            v[3] += got
    for row, _, _ in ledger.sent.values():
        ack, missing, dup, extra = verdicts[id(row)]
        row.delivered = "pass" if missing == dup == extra == 0 else "FAIL"
        if row.delivered == "FAIL" and not any(note.startswith("delivery:") for note in row.notes):
            row.notes.append(
                f"delivery: {ack} acknowledged, {missing} missing, {dup} twice, {extra} refused but stored"
            )


def _table(rows: list[Row], limit_mib: int) -> list[str]:
    failed = []
    print(
        f"\n| attack | accepted / refused, requests (items) | peak RSS MiB (x limit_mib {limit_mib}) "
        f"| s to accept normal traffic | accepting within {RECOVERY_BOUND_S:.0f} s | RSS < limit_mib "
        "| nothing secret on disk | acknowledged delivered once |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        recovery = "pass" if r.recovery_s <= RECOVERY_BOUND_S else "FAIL"
        rss = "pass" if r.peak_mib < limit_mib else "FAIL"
        unknown = f", {r.unknown} unanswered" if r.unknown else ""
        print(
            f"| {r.attack} | {r.accepted[0]} ({r.accepted[1]}) / {r.refused[0]} ({r.refused[1]}){unknown} "
            f"| {r.peak_mib:.0f} ({r.peak_mib / limit_mib:.2f}x) | {r.recovery_s:.1f} | {recovery} | {rss} "
            f"| {r.secrets} | {r.delivered} |"
        )
        failed += [
            f"{r.attack}: {c}"
            for c, v in zip(
                ("recovery", "rss", "secrets", "delivery"), (recovery, rss, r.secrets, r.delivered), strict=True
            )
            if v == "FAIL"
        ]
    return failed


def main() -> int:
    rows: list[Row] = []
    ledger = Ledger()
    with tempfile.TemporaryDirectory(prefix="attack-replay-") as tmp:
        t0 = time.monotonic()
        c = Collector(Path(tmp))
        print(f"collector started in {time.monotonic() - t0:.1f} s (limit_mib {c.limit_mib}), pid {c.proc.pid}")
        try:
            with connect_from_config(c.config, autocommit=True) as conn:
                with _attack(c, ledger, conn, rows, "1. 100,000 distinct span names, HTTP and gRPC"):
                    distinct_names(c, ledger)
                with _attack(c, ledger, conn, rows, "2. /metrics 256 MiB declared; 500 trickling connections"):
                    listeners(c, ledger)
                with _attack(c, ledger, conn, rows, "3. 200 future days, 2554, 1970"):
                    clocks(c, ledger, conn)
                with _attack(c, ledger, conn, rows, "4. secrets in every field") as row:
                    row.secrets = "FAIL" if secrets_at_rest(c, ledger, conn) else "pass"
                with _attack(c, ledger, conn, rows, "5. 48 unthrottled gRPC clients; 20 MiB JSON and protobuf"):
                    flood(c, ledger, 48, 15)
                with _attack(c, ledger, conn, rows, "6. JSON nested 10,000 deep"):
                    hostile_input(c, ledger)
                delivered(conn, ledger, 180)
        finally:
            code = c.stop()
            detach_all()
        print(f"collector exit code on SIGTERM: {code}; run took {time.monotonic() - t0:.0f} s")
        logged = Counter(line.split()[2] for line in c.log.read_text().splitlines() if line[:2] == "20")
        errors = [line for line in c.log.read_text().splitlines() if " ERROR " in line]
        print(f"collector log: {dict(logged)}" + "".join(f"\n    {line[:200]}" for line in errors[:5]))
        for r in rows:
            print(f"{r.attack}:" + "".join(f"\n    {note}" for note in r.notes))
        failed = _table(rows, c.limit_mib)
    print("\nDone-when: " + ("every clause holds" if not failed else "FAILED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Real OTLP receivers (gRPC and HTTP/protobuf) for asserting on what actually leaves the process."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

DEADLINE_S = 15.0


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(x) for x in v.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


T = TypeVar("T")


@dataclass
class Span:
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str
    status_code: int
    events: list[tuple[str, dict[str, Any]]]
    kind: int


@dataclass
class Point:
    name: str
    unit: str
    attributes: dict[str, Any]
    value: Any  # number for sums/gauges; (count, sum) for histograms
    exemplars: list[Any]
    resource: dict[str, Any]


class Store:
    """Everything a receiver got, decoded; waits are condition-based with a deadline (no sleeps)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.headers: list[dict[str, str]] = []

    def add(self, kind: str, request: Any, headers: dict[str, str] | None = None) -> None:
        with self.cond:
            getattr(self, kind).append(request)
            self.headers.append(headers or {})
            self.cond.notify_all()

    def clear(self) -> None:
        with self.cond:
            self.traces.clear()
            self.metrics.clear()
            self.logs.clear()
            self.headers.clear()

    def spans(self) -> list[Span]:
        out = []
        with self.cond:
            requests = list(self.traces)
        for req in requests:
            for rs in req.resource_spans:
                res = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            Span(
                                s.name,
                                attrs(s.attributes),
                                res,
                                ss.scope.name,
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                s.status.code,
                                [(e.name, attrs(e.attributes)) for e in s.events],
                                s.kind,
                            )
                        )
        return out

    def points(self, name: str) -> list[Point]:
        out = []
        with self.cond:
            requests = list(self.metrics)
        for req in requests:
            for rm in req.resource_metrics:
                res = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name != name:
                            continue
                        kind = m.WhichOneof("data")
                        for p in getattr(m, kind).data_points:
                            if kind == "histogram":
                                value: Any = (p.count, p.sum)
                            else:
                                value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            out.append(Point(name, m.unit, attrs(p.attributes), value, list(p.exemplars), res))
        return out

    def log_records(self) -> list[tuple[str, dict[str, Any], str]]:
        out = []
        with self.cond:
            requests = list(self.logs)
        for req in requests:
            for rl in req.resource_logs:
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        out.append((any_value(r.body), attrs(r.attributes), r.trace_id.hex()))
        return out

    def wait_for(self, predicate: Callable[[], T], timeout: float = DEADLINE_S) -> T:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                self.cond.release()
                try:
                    result = predicate()
                finally:
                    self.cond.acquire()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout}s")
                self.cond.wait(min(remaining, 0.2))

    def span_named(self, name: str, timeout: float = DEADLINE_S) -> Span:
        found = self.wait_for(lambda: [s for s in self.spans() if s.name == name], timeout)
        return found[0]


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add("traces", request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add("metrics", request, dict(context.invocation_metadata()))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add("logs", request, dict(context.invocation_metadata()))
        return logs_service_pb2.ExportLogsServiceResponse()


@dataclass
class Receiver:
    endpoint: str
    store: Store


@pytest.fixture(scope="session")
def grpc_receiver() -> Iterator[Receiver]:
    store = Store()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(store), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(store), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Receiver(f"http://127.0.0.1:{port}", store)
    finally:
        server.stop(grace=None)


_HTTP_ROUTES: dict[str, tuple[str, type[Message], type[Message]]] = {
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}


@pytest.fixture(scope="session")
def http_receiver() -> Iterator[Receiver]:
    store = Store()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            route = _HTTP_ROUTES.get(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if route is None or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(404 if route is None else 415)
                self.end_headers()
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            kind, req_type, resp_type = route
            request = req_type()
            request.ParseFromString(body)
            store.add(kind, request, {k.lower(): v for k, v in self.headers.items()})
            payload = resp_type().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", store)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(grpc_receiver: Receiver) -> Iterator[Receiver]:
    grpc_receiver.store.clear()
    yield grpc_receiver


@pytest.fixture
def telemetry(receiver: Receiver) -> Iterator[Any]:
    """otel_metrics configured against the gRPC receiver; flushed and shut down after the test."""
    import otel_metrics

    tel = otel_metrics.configure(
        "test-service",
        endpoint=receiver.endpoint,
        metric_dimensions=("tenant.id",),
        resource_attributes={"env": "t"},
    )
    assert not tel.disabled, "configure() fell back to disabled: see the log"
    yield tel
    tel.shutdown()


@pytest.fixture
def sigterm_after_request(tmp_path: Any) -> Callable[..., tuple[int, str]]:
    """Run ``source`` (an app serving ``GET /work`` with uvicorn on the port given as its last argument) in a
    subprocess, optionally under ``prefix`` (e.g. opentelemetry-instrument); once it answers, make one request and
    send SIGTERM right after the response, while the batch processor still holds its spans. Returns (return code,
    stderr)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    root = str(Path(__file__).resolve().parents[2])

    def run(source: str, args: list[str], env: dict[str, str], prefix: tuple[str, ...] = ()) -> tuple[int, str]:
        script = tmp_path / "app.py"
        script.write_text(source)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))}
        command = [*prefix, sys.executable, str(script), *args, str(port)]
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=root)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                deadline = time.monotonic() + DEADLINE_S
                while True:  # until uvicorn listens
                    try:
                        client.get("/health")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        threading.Event().wait(0.02)
                assert client.get("/work").status_code == 200
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        return proc.returncode, err

    return run

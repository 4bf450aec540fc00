"""Every listener bounds what a client can make it hold: header size, body size, header-read and idle timeouts,
a connection cap; and the health, scrape and self-telemetry listeners keep answering while the pipeline's event
loop is busy with a request. Each test is one attack from issue 12, over real sockets."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.components import Registry
from collector.exporters import prometheus
from collector.exporters.prometheus.exporter import PrometheusExporter
from collector.extensions.health_check import HealthCheck
from processors.pipeline import Signal
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.nodes import node_of

PROTO = {"Content-Type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _request(n_spans: int = 1) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n_spans):
        span = ss.spans.add(name=f"op-{i}", trace_id=bytes(range(16)), span_id=(i + 1).to_bytes(8, "big"))
        span.attributes.add(key="k").value.string_value = "v"
    data: bytes = req.SerializeToString()
    return data


def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def _connections(port: int, n: int) -> Iterator[list[socket.socket]]:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


@contextlib.contextmanager
def _trickling(port: int, n: int) -> Iterator[list[socket.socket]]:
    """``n`` connections, opened in order, each with a header block begun and never finished."""
    with _connections(port, n) as socks:
        for sock in socks:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        yield socks


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the peer closed (EOF or reset); False while the connection is still open. Any bytes the server
    sent before closing (a refusal) are read and dropped."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _receive_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _http_receiver(make_config: MakeConfig, run_collector: RunCollector, **http: Any) -> Any:
    receiver = {"protocols": {"http": {"endpoint": "127.0.0.1:0", **http}}}
    return run_collector(
        make_config(receiver=receiver, pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect"]}})
    )


def test_trickling_connections_are_closed_at_the_header_deadline(
    make_config: MakeConfig, run_collector: RunCollector
) -> None:
    collector = _http_receiver(make_config, run_collector, read_header_timeout="300ms", max_connections=5)
    port = collector.receiver.http_port
    with _trickling(port, 5) as trickling:
        _until(lambda: all(_closed_by_server(s) for s in trickling), "trickling connections closed")
    response = httpx.post(f"{collector.http_url}/v1/traces", content=_request(), headers=PROTO)
    assert response.status_code == 200
    assert collector.exporter().items() == 1


def _post(body: bytes, sent: int | None = None, headers: bytes = b"") -> bytes:
    """An OTLP/HTTP request for ``body``, of which only ``sent`` bytes are included (the rest never comes)."""
    head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nConnection: close\r\n"
    return head + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body[:sent]


def test_at_the_cap_a_new_client_takes_the_place_of_the_longest_trickling_one(
    make_config: MakeConfig, run_collector: RunCollector
) -> None:
    # Without this, clients holding the cap with half-sent headers kept the port refusing for read_header_timeout.
    collector = _http_receiver(make_config, run_collector, read_header_timeout="10s", max_connections=5)
    port = collector.receiver.http_port
    with _trickling(port, 5) as trickling:
        with _connections(port, 1) as (client,):
            client.sendall(_post(_request()))
            assert _receive_all(client).startswith(b"HTTP/1.1 200")
        # Exactly one made room, the one that had waited longest; the others wait for their deadline.
        assert [_closed_by_server(s) for s in trickling] == [True, False, False, False, False]
    assert collector.exporter().items() == 1


def test_at_the_cap_a_new_client_is_refused_when_every_connection_has_a_request_in_progress(
    make_config: MakeConfig, run_collector: RunCollector
) -> None:
    collector = _http_receiver(make_config, run_collector, max_connections=2)
    port = collector.receiver.http_port
    body = _request(50)
    with _connections(port, 2) as busy:
        for sock in busy:  # headers whole, the body still coming: "100 Continue" says the request is in progress
            sock.sendall(_post(body, sent=0, headers=b"Expect: 100-continue\r\n"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 100")
            sock.sendall(body[:10])
        with _connections(port, 1) as (extra,):
            assert _receive_all(extra).startswith(b"HTTP/1.1 503")
        for sock in busy:  # both requests are served in full
            sock.sendall(body[10:])
            assert _receive_all(sock).startswith(b"HTTP/1.1 200")
    assert collector.exporter().items() == 100


def test_an_idle_keep_alive_connection_is_closed(make_config: MakeConfig, run_collector: RunCollector) -> None:
    collector = _http_receiver(make_config, run_collector, idle_timeout="300ms")
    body = _request()
    with _connections(collector.receiver.http_port, 1) as (sock,):
        head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        _until(lambda: _closed_by_server(sock), "idle connection closed")


def test_oversized_headers_are_refused_and_the_receiver_keeps_serving(
    make_config: MakeConfig, run_collector: RunCollector
) -> None:
    collector = _http_receiver(make_config, run_collector, max_request_header_size=4096)
    with httpx.Client(base_url=collector.http_url) as client:
        big = client.post("/v1/traces", content=_request(), headers={**PROTO, "X-Big": "x" * 8192})
        assert big.status_code == 431
        assert client.post("/v1/traces", content=_request(), headers=PROTO).status_code == 200
    assert collector.exporter().items() == 1


def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    make_config: MakeConfig, run_collector: RunCollector
) -> None:
    collector = _http_receiver(make_config, run_collector)
    with _connections(collector.receiver.http_port, 1) as (sock,):
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n" % (256 << 20))
        answer = _receive_all(sock)  # no body byte was sent: the answer and the close come from the headers alone
    assert answer.startswith(b"HTTP/1.1 413") and b"max_request_body_size" in answer


def _admin_listeners(
    make_config: MakeConfig, run_collector: RunCollector, test_components: Registry, **collect: Any
) -> Any:
    """A collector with health_check, a prometheus exporter and the self-telemetry endpoint, all on port 0."""
    components = dataclasses.replace(
        test_components, exporters={**test_components.exporters, **{f.type: f for f in prometheus.factories}}
    )
    config = make_config(
        exporters={"collect": collect or None, "prometheus": {"endpoint": "127.0.0.1:0"}},
        pipelines={
            "traces": {"receivers": ["otlp"], "exporters": ["collect"]},
            "metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]},
        },
        extensions={"health_check": {"endpoint": "127.0.0.1:0"}},
        service_extensions=["health_check"],
    )
    config["service"]["telemetry"] = {"metrics": {"address": "127.0.0.1:0"}}
    collector = run_collector(config, components)
    scrape = node_of(collector.service, "exporter", "prometheus", PrometheusExporter, Signal.METRICS)
    health = node_of(collector.service, "extension", "health_check", HealthCheck)
    return collector, {
        "health_check": f"http://127.0.0.1:{health.port}/",
        "prometheus": f"http://127.0.0.1:{scrape.port}/metrics",
        "telemetry": f"http://127.0.0.1:{collector.service.telemetry_port}/metrics",
    }


@pytest.mark.parametrize("listener", ["prometheus", "telemetry", "health_check"])
def test_admin_endpoints_refuse_a_declared_body_unread(
    make_config: MakeConfig, run_collector: RunCollector, test_components: Registry, listener: str
) -> None:
    _, urls = _admin_listeners(make_config, run_collector, test_components)
    url = httpx.URL(urls[listener])
    with _connections(url.port or 80, 1) as (sock,):
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (url.raw_path, 256 << 20))
        answer = _receive_all(sock)  # 256 MiB declared, none sent: answered and closed from the headers alone
    assert answer.startswith(b"HTTP/1.1 413")
    assert httpx.get(str(url)).status_code == 200


def test_admin_endpoints_answer_while_the_pipeline_loop_is_busy(
    make_config: MakeConfig, run_collector: RunCollector, test_components: Registry
) -> None:
    collector, urls = _admin_listeners(make_config, run_collector, test_components, mode="stall")
    exporter = collector.exporter()
    posted: list[int] = []
    sender = threading.Thread(
        target=lambda: posted.append(
            httpx.post(f"{collector.http_url}/v1/traces", content=_request(2000), headers=PROTO, timeout=60).status_code
        )
    )
    sender.start()
    try:
        assert exporter.entered.wait(30), "the request never reached the exporter"
        # The service's event loop is now blocked inside consume(); the listeners run on loops of their own.
        for name, url in urls.items():
            assert httpx.get(url, timeout=10).status_code == 200, name
    finally:
        exporter.release.set()
        sender.join(60)
    assert posted == [200]


def test_grpc_connections_beyond_the_cap_are_closed(make_config: MakeConfig, run_collector: RunCollector) -> None:
    receiver = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "max_connections": 2}}}
    collector = run_collector(
        make_config(receiver=receiver, pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect"]}})
    )
    with _connections(collector.receiver.grpc_port, 3) as socks:
        _until(lambda: _closed_by_server(socks[2]), "the third connection refused")
        assert not _closed_by_server(socks[0])
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        channel.unary_unary(EXPORT)(_request(), timeout=20, wait_for_ready=True)
    assert collector.exporter().items() == 1

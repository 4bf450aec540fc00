"""memory_limiter looks before a request is decoded: a real collector (otlp receiver -> memory_limiter -> an
exporter held shut) with one large request in flight refuses the next one from its size alone (a gRPC body that
is not even protobuf is answered UNAVAILABLE, not INVALID_ARGUMENT; an HTTP body is refused from its
Content-Length, unread), and accepts again as soon as the request in flight is through."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx

from collector.component import Signal
from collector.components import Registry
from collector.exporters.exporterhelper.testing import trace_request
from processors import memory_limiter
from processors.memory_limiter import MIB, process_rss_bytes
from tests.collector.conftest import MakeConfig, RunCollector

WIRE = 6 * MIB  # a request's protobuf size: reserved as 36 MiB
MAX_RECV_MIB = 7
SPIKE_MIB = 28  # two calls at once: 28 MiB // (2 x 7 MiB), processors.memory_limiter.concurrent_calls


def _big_request() -> Any:
    return trace_request(*(f"span-{i:05d}-" + "x" * 1000 for i in range(WIRE // 1040)))


def _export(endpoint: str, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(endpoint) as channel:
        call: Callable[..., Any] = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            call(body, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_a_request_is_refused_from_its_size_before_it_is_decoded(
    run_collector: RunCollector, make_config: MakeConfig, test_components: Registry
) -> None:
    components = Registry(
        receivers=test_components.receivers,
        processors={**test_components.processors, **{f.type: f for f in memory_limiter.factories}},
        exporters=test_components.exporters,
        connectors=test_components.connectors,
        extensions=test_components.extensions,
    )
    body = _big_request().SerializeToString()
    assert len(body) >= WIRE * 0.9
    # Hard limit 84 MiB above the memory in use now: reservations may reach the soft limit (56 MiB above) plus half
    # the spike allowance, 70 MiB, less than two requests' reservations (72 MiB). So a second request cannot be
    # admitted while the first is in flight, unless this process's RSS fell 2 MiB below its reading here; the
    # reading is taken at a floor: after a collection and a heap trim (the suite's earlier tests leave garbage that
    # a later collection gives back, which once admitted the HTTP body below). The soft limit admits the first,
    # and stays above what this process still holds after it (40-50 MiB: the test's bodies, grpc's buffers).
    gc.collect()
    _trim_heap()
    limit_mib = process_rss_bytes() // MIB + 84
    telemetry_port = _free_port()
    config = make_config(
        exporters={"collect": {"mode": "block"}},
        processors={
            "memory_limiter": {"check_interval": "100ms", "limit_mib": limit_mib, "spike_limit_mib": SPIKE_MIB}
        },
        receiver={
            "protocols": {
                "grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": MAX_RECV_MIB},
                "http": {"endpoint": "127.0.0.1:0"},
            }
        },
        pipelines={"traces": {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["collect"]}},
    )
    # The collector's own metrics, served as in production: the receiver's refusals are read there.
    config["service"]["telemetry"] = {
        "metrics": {
            "level": "normal",
            "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": telemetry_port}}}}],
        }
    }
    collector = run_collector(config, components)
    exporter = collector.exporter("collect", Signal.TRACES)
    before = _refusals(telemetry_port)  # the process's meter may hold earlier tests' counts
    first: list[grpc.StatusCode] = []
    sender = threading.Thread(target=lambda: first.append(_export(collector.grpc_endpoint, body)))
    sender.start()
    assert exporter.entered.wait(30), f"the first request did not reach the exporter: {first}"

    garbage = b"\xff" * len(body)  # not protobuf: decoding it would answer INVALID_ARGUMENT
    assert _export(collector.grpc_endpoint, garbage) is grpc.StatusCode.UNAVAILABLE
    response = httpx.post(
        f"{collector.http_url}/v1/traces",
        content=garbage,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert _export(collector.grpc_endpoint, body) is grpc.StatusCode.UNAVAILABLE  # real spans, refused by size
    # The receiver counts what it refused before decoding: the spans of the real request it had read (from their
    # field tags), and as requests the garbage (no items to count) and the HTTP body refused unread.
    after = _refusals(telemetry_port)
    spans = len(_big_request().resource_spans[0].scope_spans[0].spans)
    assert [a - b for a, b in zip(after, before, strict=True)] == [spans, 1, 1], (before, after)

    assert exporter.gate is not None
    collector.loop.call_soon_threadsafe(exporter.gate.set)
    sender.join(30)
    assert first == [grpc.StatusCode.OK]
    exporter.requests.clear()  # what a real exporter would not keep
    exporter.wires.clear()
    # The pressure is over: within seconds the same size is admitted again (the garbage now reaches the decoder),
    # and so is a real request. Each is polled: this collector shares the test process, whose RSS the limiter reads,
    # so memory the last refused or failed request held can take a collection cycle to be given back.
    assert _admitted(collector.grpc_endpoint, garbage) is grpc.StatusCode.INVALID_ARGUMENT
    assert _admitted(collector.grpc_endpoint, body) is grpc.StatusCode.OK


def _trim_heap() -> None:
    """glibc's malloc_trim(0), where there is one: freed heap pages go back to the OS now, not later."""
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sample(text: str, name: str, transport: str) -> float:
    """The value of ``name``'s sample for ``transport`` in a Prometheus text exposition (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and f'transport="{transport}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _refusals(telemetry_port: int) -> list[float]:
    """Refused gRPC spans, refused gRPC requests, refused HTTP requests, from the collector's own /metrics."""
    own = httpx.get(f"http://127.0.0.1:{telemetry_port}/metrics", timeout=10).text
    return [
        _sample(own, "otelcol_receiver_refused_spans_total", "grpc"),
        _sample(own, "otelcol_receiver_refused_requests_total", "grpc"),
        _sample(own, "otelcol_receiver_refused_requests_total", "http"),
    ]


def _admitted(endpoint: str, body: bytes, seconds: float = 20) -> grpc.StatusCode:
    """The first answer to ``body`` that is not a memory refusal, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (status := _export(endpoint, body)) is grpc.StatusCode.UNAVAILABLE:
        assert time.monotonic() < deadline, "still refusing after the request in flight went through"
        time.sleep(0.1)
    return status

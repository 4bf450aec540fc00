"""A full disk under ``file_storage``, on a real filesystem (a 2 MiB tmpfs): collector A queues on it and forwards
over OTLP/gRPC to collector B. While the disk is full, clients are refused with UNAVAILABLE (retryable) and never
left waiting; what was queued is still delivered, and those deliveries are recorded, so a restart on the full disk
re-sends nothing; once space returns, A accepts again by itself. Every acknowledged span reaches B exactly once."""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import Signal
from collector.components import Registry
from collector.exporters import otlp
from collector.exporters.exporterhelper.queue import PersistentQueue
from collector.exporters.exporterhelper.queued_exporter import QueuedExporter
from collector.exporters.exporterhelper.testing import span_names, trace_request
from collector.extensions import file_storage
from tests.collector.conftest import MakeConfig, RunCollector
from tests.support.nodes import node_of


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    """Take every free byte of the filesystem."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return filler


def _request(batch: int) -> ExportTraceServiceRequest:
    return trace_request(*(f"b{batch:04d}-{i:03d}-" + "x" * 150 for i in range(100)))


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.02)


def test_full_disk_refuses_retryably_recovers_by_itself_and_delivers_exactly_once(
    small_disk: Path, run_collector: RunCollector, make_config: MakeConfig, test_components: Registry
) -> None:
    components = Registry(
        receivers=test_components.receivers,
        processors=test_components.processors,
        exporters={**test_components.exporters, **{f.type: f for f in otlp.factories}},
        connectors=test_components.connectors,
        extensions={**test_components.extensions, **{f.type: f for f in file_storage.factories}},
    )
    b = run_collector(make_config(pipelines={"traces": {"receivers": ["otlp"], "exporters": ["collect"]}}))
    received = b.exporter("collect", Signal.TRACES)
    received.config.mode = "refuse"  # B is down for now: A's queue holds what it acknowledges
    a_config = make_config(
        exporters={
            "otlp_grpc/b": {
                "endpoint": b.grpc_endpoint,
                "tls": {"insecure": True},
                "retry_on_failure": {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": 0},
                "sending_queue": {"storage": "file_storage", "num_consumers": 2},
            }
        },
        pipelines={"traces": {"receivers": ["otlp"], "exporters": ["otlp_grpc/b"]}},
        extensions={"file_storage": {"directory": str(small_disk / "queues"), "segment_size_mib": 1}},
        service_extensions=["file_storage"],
    )
    a = run_collector(a_config, components)
    acked: list[int] = []
    refused: list[int] = []

    def send(batch: int) -> bool:
        with grpc.insecure_channel(a.grpc_endpoint) as channel:
            try:
                trace_service_pb2_grpc.TraceServiceStub(channel).Export(_request(batch), timeout=10)
            except grpc.RpcError as exc:
                # Refused at once and retryable: never DEADLINE_EXCEEDED (a client left hanging) nor INTERNAL.
                assert exc.code() is grpc.StatusCode.UNAVAILABLE, (exc.code(), exc.details())
                refused.append(batch)
                return False
        acked.append(batch)
        return True

    for batch in range(5):
        assert send(batch)
    filler = _fill(small_disk)
    for batch in range(5, 25):
        send(batch)
    assert refused, "the full disk refused nothing"
    assert len(acked) >= 5

    # B comes back while the disk is still full: the queued batches are delivered and recorded as delivered.
    received.config.mode = "ok"
    _wait(lambda: len(received.requests) >= len(acked), "the acknowledged batches to reach B")
    queue = node_of(a.service, "exporter", "otlp_grpc/b", QueuedExporter, Signal.TRACES)._queue
    assert isinstance(queue, PersistentQueue)  # the sending queue on file_storage: every record acknowledged
    _wait(lambda: queue.store.unacked == 0, "A to record its deliveries")

    # A restart on the full disk re-sends nothing that was delivered.
    a.stop()
    a = run_collector(a_config, components)
    assert node_of(a.service, "exporter", "otlp_grpc/b", QueuedExporter, Signal.TRACES).recovered == 0

    # Space returns: A accepts again by itself (clients retry a refusal, as OTLP clients do).
    filler.unlink()
    for batch in range(25, 35):
        _wait(partial(send, batch), f"batch {batch} to be accepted")
    _wait(lambda: len(received.requests) >= len(acked), "every acknowledged batch to reach B")
    counts = collections.Counter(name for request in received.requests for name in span_names(request))
    expected = {name for batch in acked for name in span_names(_request(batch))}
    assert set(counts) == expected
    assert set(counts.values()) == {1}, "a delivered span was delivered again"

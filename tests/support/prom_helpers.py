"""Test helpers: OTLP metrics from the real OTel SDK, promtool, and a real Prometheus server as a
subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install -y prometheus; the test script does)"
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (apt-get install -y prometheus; the test script does)",
)


def collect(reader: InMemoryMetricReader) -> ExportMetricsServiceRequest:
    data = reader.get_metrics_data()
    assert data is not None
    return encode_metrics(data)


def promtool_check(text: str) -> str:
    """promtool's findings (empty when clean) on an exposition in text format."""
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30, check=False
    )
    return (proc.stdout + proc.stderr).decode().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = _get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(_get(f"{self.base}/api/v1/targets")["data"]["activeTargets"])

    def exemplars(self, promql: str) -> list[dict[str, Any]]:
        now = time.time()
        q = urllib.parse.urlencode({"query": promql, "start": now - 300, "end": now + 60})
        return list(_get(f"{self.base}/api/v1/query_exemplars?{q}")["data"])

    def wait(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        """Poll ``predicate`` (returns a truthy value when done) until the deadline."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                last = predicate()
                if last:
                    return last
            time.sleep(0.1)  # polling interval, not synchronisation: the deadline bounds the wait
        raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@contextlib.contextmanager
def prometheus_server(tmp: Path, target_port: int, *, exemplars: bool = False) -> Iterator[Prometheus]:
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: otel\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    args = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if exemplars:
        args.append("--enable-feature=exemplar-storage")
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        prom.wait(lambda: _get(f"{prom.base}/api/v1/status/buildinfo")["status"] == "success", what="prometheus up")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


T = TypeVar("T")


class LoopThread:
    """The exporter runs in its own asyncio loop so the test can block on Prometheus's HTTP API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

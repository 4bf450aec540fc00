"""Test components and a fixture that runs a real collector in a background thread (its own asyncio loop).

``collect`` is a real Exporter that keeps every request it receives; ``tag`` a real processor that sets a
span attribute; ``spancount`` a real traces->metrics connector. They are injected through
``Service(components=...)``, the same way the built-in registry is consulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import (
    Connector,
    ConnectorFactory,
    Exporter,
    ExporterFactory,
    Host,
    Processor,
    ProcessorFactory,
)
from collector.components import Registry
from collector.config.loader import parse_config
from collector.extensions import bearertokenauth, health_check
from collector.receivers import otlp as otlp_receiver
from collector.service import Service
from processors.pipeline import (
    Consumer,
    CreateSettings,
    DataError,
    RefusedError,
    Request,
    Signal,
    item_count,
    serialized,
)

# Every start/shutdown of a test component, in order: ("start", "exporter/collect") ...
LIFECYCLE: list[tuple[str, str]] = []


@dataclass
class CollectConfig:
    # ok: accept; refuse: RefusedError for the first `times` requests; data: DataError; partial: DataError
    # with rejected_items=1; fail_start: raise in start(); block: wait for `gate` before accepting; stall: block
    # the service's event loop itself until `release` is set, as CPU-bound processing of a large request does.
    mode: Literal["ok", "refuse", "data", "partial", "fail_start", "block", "stall"] = "ok"
    times: int = 1_000_000
    healthy: bool = True
    retry_after: float = 1.0


class CollectExporter(Exporter):
    def __init__(self, settings: CreateSettings, config: CollectConfig) -> None:
        self.settings = settings
        self.config = config
        self.requests: list[Request] = []
        self.wires: list[bytes] = []  # serialized(request) as each arrived: what a persistent queue would store
        self.calls = 0
        self._cond = threading.Condition()
        self.is_healthy = config.healthy
        self.entered = threading.Event()  # a consume call is in flight (modes "block" and "stall")
        self.release = threading.Event()  # ends a "stall"
        self.gate: asyncio.Event | None = None

    async def start(self, host: Host) -> None:
        self.gate = asyncio.Event()
        LIFECYCLE.append(("start", f"exporter/{self.settings.id}"))
        if self.config.mode == "fail_start":
            raise RuntimeError("peer unreachable (test)")

    async def shutdown(self) -> None:
        LIFECYCLE.append(("shutdown", f"exporter/{self.settings.id}"))

    def healthy(self) -> bool:
        return self.is_healthy

    async def consume(self, signal: Signal, request: Request) -> None:
        self.calls += 1
        mode = self.config.mode
        if mode == "refuse" and self.calls <= self.config.times:
            raise RefusedError("test exporter refuses", retry_after=self.config.retry_after)
        if mode == "data":
            raise DataError("test exporter rejects the data")
        if mode == "stall":
            self.entered.set()
            self.release.wait(60)  # a blocking wait: nothing else runs on this loop meanwhile
        if mode == "block":
            assert self.gate is not None
            self.entered.set()
            await self.gate.wait()
            LIFECYCLE.append(("consumed", f"exporter/{self.settings.id}"))
        if mode == "partial":
            exc = DataError("one item rejected by the test exporter")
            exc.rejected_items = 1  # type: ignore[attr-defined]
            raise exc
        with self._cond:
            self.requests.append(request)
            self.wires.append(serialized(request))
            self._cond.notify_all()

    def items(self) -> int:
        with self._cond:
            return sum(item_count(self.settings.signal, r) for r in self.requests)

    def wait_items(self, n: int, timeout: float = 15.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(item_count(self.settings.signal, r) for r in self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout}s for {n} items, have {len(self.requests)} requests")
                self._cond.wait(left)
            return list(self.requests)


@dataclass
class TagConfig:
    key: str = "tagged.by"
    value: str = "tag"


class TagProcessor(Processor):
    """Sets a span attribute in place (so tests can see that pipelines get their own copies)."""

    def __init__(self, settings: CreateSettings, config: TagConfig, next_consumer: Consumer) -> None:
        super().__init__(settings, next_consumer)
        self.config = config

    async def start(self, host: Any) -> None:
        LIFECYCLE.append(("start", f"processor/{self.settings.id}"))

    async def shutdown(self) -> None:
        LIFECYCLE.append(("shutdown", f"processor/{self.settings.id}"))

    async def consume(self, signal: Signal, request: Request) -> None:
        if isinstance(request, ExportTraceServiceRequest):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        kv = span.attributes.add()
                        kv.key = self.config.key
                        kv.value.string_value = self.config.value
        await self.next_consumer.consume(signal, request)


@dataclass
class SpanCountConfig:
    metric_name: str = "test.spans"


class SpanCountConnector(Connector):
    """traces -> metrics: one gauge point holding the span count of each traces request."""

    def __init__(self, settings: CreateSettings, config: SpanCountConfig, next_consumer: Consumer) -> None:
        self.settings = settings
        self.config = config
        self.next_consumer = next_consumer

    async def start(self, host: Host) -> None:
        LIFECYCLE.append(("start", f"connector/{self.settings.id}"))

    async def shutdown(self) -> None:
        LIFECYCLE.append(("shutdown", f"connector/{self.settings.id}"))

    async def consume(self, signal: Signal, request: Request) -> None:
        out = ExportMetricsServiceRequest()
        metric = out.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = self.config.metric_name
        metric.gauge.data_points.add().as_int = item_count(signal, request)
        await self.next_consumer.consume(Signal.METRICS, out)


TEST_COMPONENTS = Registry(
    receivers={f.type: f for f in otlp_receiver.factories},
    processors={"tag": ProcessorFactory("tag", TagConfig, lambda s, c, n: TagProcessor(s, c, n))},
    exporters={"collect": ExporterFactory("collect", CollectConfig, lambda s, c: CollectExporter(s, c))},
    connectors={
        "spancount": ConnectorFactory(
            "spancount",
            SpanCountConfig,
            lambda s, c, n: SpanCountConnector(s, c, n),
            routes=frozenset({(Signal.TRACES, Signal.METRICS)}),
        )
    },
    extensions={f.type: f for mod in (health_check, bearertokenauth) for f in mod.factories},
)

# The collector's own metrics endpoint stays off in tests (tests run in parallel; no fixed ports).
NO_SELF_TELEMETRY = {"metrics": {"level": "none"}}


def otlp_config(
    exporters: dict[str, Any] | None = None,
    pipelines: dict[str, Any] | None = None,
    receiver: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A config with an otlp receiver on ephemeral ports feeding ``collect`` exporters."""
    cfg: dict[str, Any] = {
        "receivers": {
            "otlp": receiver
            or {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
        "exporters": exporters if exporters is not None else {"collect": None},
        "service": {
            "telemetry": NO_SELF_TELEMETRY,
            "pipelines": pipelines
            or {s: {"receivers": ["otlp"], "exporters": ["collect"]} for s in ("traces", "metrics", "logs")},
        },
    }
    for key, value in extra.items():
        if key == "service_extensions":
            cfg["service"]["extensions"] = value
        else:
            cfg[key] = value
    return cfg


class RunningCollector:
    """A Service running in a background thread; tests talk to it over real sockets."""

    def __init__(self, config: dict[str, Any], components: Registry = TEST_COMPONENTS) -> None:
        # Only our components and the test ones: other components in this tree may be half-built.
        self.service = Service(parse_config(config, components, include_builtin=False))
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.service.start()
            except BaseException as exc:
                self.error = exc
                self._started.set()
                return
            self._started.set()
            await self._stop.wait()
            await self.service.shutdown(10.0)

        self.loop.run_until_complete(main())
        self.loop.close()

    def start(self) -> RunningCollector:
        self._thread.start()
        if not self._started.wait(30):
            raise AssertionError("collector did not start within 30s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        # A service that failed to start has returned (or is returning) from its thread and closing its loop:
        # nothing to stop. Calling into a closed loop raised here now and then, failing a passed test in teardown.
        if self.error is None and self._thread.is_alive() and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a coroutine factory on the collector's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(30)

    @property
    def receiver(self) -> Any:
        return self.service.node("receiver", "otlp")

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.receiver.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}"

    def exporter(self, id: str = "collect", signal: Signal = Signal.TRACES) -> CollectExporter:
        exporter = self.service.node("exporter", id, signal)
        assert isinstance(exporter, CollectExporter), f"exporter {id} is a {type(exporter).__name__}"
        return exporter


# The fixtures' types, for test signatures.
RunCollector = Callable[..., RunningCollector]
MakeConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def run_collector() -> Iterator[RunCollector]:
    running: list[RunningCollector] = []

    def start(config: dict[str, Any], components: Registry = TEST_COMPONENTS) -> RunningCollector:
        collector = RunningCollector(config, components)
        running.append(collector)
        return collector.start()

    yield start
    for collector in running:
        collector.stop()


@pytest.fixture
def make_config() -> MakeConfig:
    """``otlp_config`` for tests (test modules cannot import conftest under --import-mode=importlib)."""
    return otlp_config


@pytest.fixture
def test_components() -> Registry:
    return TEST_COMPONENTS


@pytest.fixture
def lifecycle() -> Iterator[list[tuple[str, str]]]:
    LIFECYCLE.clear()
    yield LIFECYCLE
    LIFECYCLE.clear()

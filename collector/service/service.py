"""The running collector: builds the graph, starts and stops it in order, and serves as the components' Host.

Start order is extensions, exporters, connectors, processors, receivers (downstream first, so nothing receives
data before what consumes it is ready); shutdown is the reverse: receivers stop accepting and finish in-flight
requests first, processors flush, exporters drain or persist their queues, extensions go last.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal as signals
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.metrics import Meter

from collector import telemetry
from collector.components import Registry, merge_registries, registry
from collector.config.model import Config
from collector.service.graph import KINDS_START_ORDER, BuildError, Graph, Node, NodeKind, build_graph
from processors.pipeline import Component, ComponentID, CreateSettings, Exporter, Extension, Signal

__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "Service", "StartError"]

# Bound on the whole shutdown after SIGTERM/SIGINT: draining, flushing, persisting queues.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
# Every component still gets this long to shut down once the budget is spent (so queues can be persisted).
SHUTDOWN_MIN_SLICE = 0.25

_log = logging.getLogger("otel_metrics.collector")


class StartError(Exception):
    """A component could not be created or started; the message names it. What had started was stopped."""


class Service:
    """One collector instance, built from the factories ``config`` was validated against plus ``components``
    (an optional extra registry: tests inject their own components this way)."""

    def __init__(
        self,
        config: Config,
        components: Registry | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        base = config.components if config.components is not None else registry()
        self.components = merge_registries(base, components)
        self.logger = logger or _log
        self.graph = Graph()
        self.state = "created"
        self._started: list[Node] = []
        self._telemetry_server: telemetry.TelemetryServer | None = None
        self._up_since: float | None = None
        self._meter: Meter = telemetry.meter_provider().get_meter("otelcol")

    # -- Host ---------------------------------------------------------------------------------------------
    def get_extension(self, id: ComponentID) -> Extension:
        for node in self.graph.of_kind("extension"):
            if node.id == id and isinstance(node.component, Extension):
                return node.component
        raise KeyError(f"extension {str(id)!r} is not configured in service.extensions")

    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        """Per component (``"exporter/otlp/tempo"``) and per pipeline (``"pipeline/traces"``) health."""
        running = self.state == "running"
        started = {id(n) for n in self._started}
        status: dict[str, dict[str, Any]] = {}
        for node in self.graph.nodes:
            healthy = running and id(node) in started and _healthy(node.component)
            entry = status.setdefault(node.key, {"kind": node.kind, "healthy": True, "status": "", "pipelines": []})
            entry["healthy"] = entry["healthy"] and healthy
            entry["status"] = self._status_word(entry["healthy"])
            entry["pipelines"] = sorted({*entry["pipelines"], *(str(p) for p in node.pipelines)})
            # Exporters with a sending queue report its depth (health_check and the analytics /health show it).
            if isinstance(node.component, Exporter) and node.component.queue_size is not None:
                entry["queue_size"] = node.component.queue_size
                entry["queue_capacity"] = node.component.queue_capacity
        for pid, nodes in self.graph.pipelines.items():
            healthy = all(status[n.key]["healthy"] for n in nodes)
            status[f"pipeline/{pid}"] = {
                "kind": "pipeline",
                "healthy": healthy,
                "status": self._status_word(healthy),
                "components": [n.key for n in nodes],
            }
        return status

    def _status_word(self, healthy: bool) -> str:
        if self.state in ("created", "starting"):
            return "StatusStarting"
        if self.state in ("stopping", "stopped"):
            return "StatusStopping" if self.state == "stopping" else "StatusStopped"
        return "StatusOK" if healthy else "StatusRecoverableError"

    @property
    def up_since(self) -> float | None:
        return self._up_since

    def node(self, kind: NodeKind, id: ComponentID | str, signal: Signal | None = None) -> Component:
        """The running component (tests read e.g. a receiver's bound ports)."""
        cid = ComponentID.parse(id) if isinstance(id, str) else id
        for node in self.graph.of_kind(kind):
            if node.id == cid and (signal is None or node.signal is signal):
                return node.component
        raise KeyError(f"no {kind} {str(cid)!r}")

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _settings(self, cid: ComponentID, signal: Signal) -> CreateSettings:
        return CreateSettings(id=cid, signal=signal, meter=self._meter, logger=self.logger)

    async def start(self) -> None:
        """Create and start every component; on any failure stop what started and raise StartError."""
        self.state = "starting"
        try:
            self.graph = build_graph(self.config, self.components, self._settings)
        except BuildError as exc:
            self.state = "stopped"
            raise StartError(str(exc)) from exc
        try:
            await self._start_telemetry()
            for kind in KINDS_START_ORDER:
                for node in self.graph.of_kind(kind):
                    # Listed before start: a component that failed half-way (one of two ports bound) is
                    # shut down too, as upstream does; shutdown must tolerate a partial start.
                    self._started.append(node)
                    try:
                        await node.component.start(self)
                    except Exception as exc:
                        raise StartError(f"cannot start {node.describe()}: {exc}") from exc
        except BaseException:
            await self._stop_started(time.monotonic() + DEFAULT_SHUTDOWN_TIMEOUT)
            self.state = "stopped"
            raise
        self.state = "running"
        self._up_since = time.time()
        self.logger.info("collector started with %d pipeline(s)", len(self.graph.pipelines))

    async def _start_telemetry(self) -> None:
        endpoint = self.config.telemetry.metrics.endpoint()
        if endpoint is None:
            return
        try:
            self._telemetry_server = await telemetry.serve(endpoint)
        except Exception as exc:
            raise StartError(f"cannot serve the collector's own metrics on {endpoint}: {exc}") from exc

    async def _stop_started(self, deadline: float | None = None) -> bool:
        """Shut down in reverse start order. Each component gets what is left of the budget (at least
        SHUTDOWN_MIN_SLICE): a receiver stuck on an in-flight request must not keep the exporters from
        persisting their queues. False if any component overran its slice."""
        clean = True
        while self._started:
            node = self._started.pop()
            budget = None if deadline is None else max(deadline - time.monotonic(), SHUTDOWN_MIN_SLICE)
            try:
                await asyncio.wait_for(node.component.shutdown(), budget)
            except TimeoutError:
                clean = False
                self.logger.error("%s did not shut down within %.2fs; abandoned", node.describe(), budget or 0)
            except Exception:
                self.logger.exception("error shutting down %s", node.describe())
        server, self._telemetry_server = self._telemetry_server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.close(), SHUTDOWN_MIN_SLICE * 4)
        return clean

    async def shutdown(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> bool:
        """Stop in reverse start order within ``timeout`` seconds (plus SHUTDOWN_MIN_SLICE per component that
        overran); False if a component had to be abandoned."""
        if self.state in ("stopping", "stopped"):
            return True
        self.state = "stopping"
        try:
            return await self._stop_started(time.monotonic() + timeout)
        finally:
            self.state = "stopped"

    @property
    def telemetry_port(self) -> int | None:
        """Port of the collector's own metrics endpoint, when it is served."""
        return self._telemetry_server.port if self._telemetry_server is not None else None

    async def run(
        self,
        stop: asyncio.Event | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        """Start, wait for SIGTERM/SIGINT (or ``stop``), shut down. Raises StartError if starting failed.

        ``on_stopping`` is called when the stop request arrives (the CLI arms its exit watchdog there)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signals.Signals] = []
        for sig in (signals.SIGTERM, signals.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / not POSIX
                pass
        try:
            await self.start()
            _freeze_startup_heap()
            await stop.wait()
            self.logger.info("shutting down (bound %.1fs)", shutdown_timeout)
            if on_stopping is not None:
                on_stopping()
            await self.shutdown(shutdown_timeout)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def _freeze_startup_heap() -> None:
    """Move what starting allocated (modules, components, their config: ~240,000 objects) out of the cyclic GC's
    sight: it lives as long as the collector, and every full collection rescanned it holding the GIL (50-80 ms each
    on an idle machine while a large request was processed, when no listener thread could answer). Only the
    process's own run does this: in a process that starts many collectors (tests) frozen objects would never be
    collected."""
    gc.collect()
    gc.freeze()


def _healthy(component: Component) -> bool:
    try:
        return component.healthy()
    except Exception:
        return False

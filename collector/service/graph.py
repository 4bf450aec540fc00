"""The pipeline graph: component instances and the consumers that wire them (upstream service/internal/graph).

Instances, as upstream creates them:
- a receiver: one per id, whatever the pipelines and signals (one port), fanning out to every pipeline
  listing it;
- a processor: one per (pipeline, id): processors keep per-pipeline state (batch) and change messages in
  place;
- an exporter: one per (id, signal), shared by every pipeline of that signal listing it;
- a connector: one per (id, route) it is used on; it is an exporter of its input pipelines and feeds (as
  their receiver) every pipeline of its output signal that lists it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeAlias, TypeVar

from collector.components import Registry
from collector.config.model import Config, PipelineID
from collector.service.fanout import ExportersFanOut, PipelinesFanOut
from processors.pipeline import (
    Component,
    ComponentID,
    Connector,
    Consumer,
    CreateSettings,
    Exporter,
    ProcessorRun,
    Request,
    Signal,
    SyncProcessor,
    received_as,
)

__all__ = ["BuildError", "Graph", "Node", "NodeKind", "build_graph"]

NodeKind: TypeAlias = Literal["extension", "exporter", "connector", "processor", "receiver"]
KINDS_START_ORDER: tuple[NodeKind, ...] = ("extension", "exporter", "connector", "processor", "receiver")
_C = TypeVar("_C", bound=Component)


@dataclass
class Node:
    kind: NodeKind
    id: ComponentID
    component: Component
    signal: Signal | None = None
    pipelines: list[PipelineID] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.id}"

    def describe(self) -> str:
        where = f" in pipeline {', '.join(str(p) for p in self.pipelines)}" if self.pipelines else ""
        return f"{self.kind} {str(self.id)!r}{where}"


class _PipelineEntry:
    """The first consumer of a pipeline, resolved once the pipeline is built (connectors point at pipelines
    that may be built after them)."""

    def __init__(self, pipeline: PipelineID) -> None:
        self.pipeline = pipeline
        self.target: Consumer | None = None
        # No processor here changes messages without saying so (changing): the exporters see them as received.
        self.unchanged = True

    async def consume(self, signal: Signal, request: Request) -> None:
        assert self.target is not None, f"pipeline {self.pipeline} used before it was built"
        if self.unchanged:
            await self.target.consume(signal, request)
            return
        with received_as(request, None):  # a processor may change it: its received bytes no longer hold
            await self.target.consume(signal, request)


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    pipelines: dict[PipelineID, list[Node]] = field(default_factory=dict)

    def of_kind(self, kind: NodeKind) -> Iterator[Node]:
        return (n for n in self.nodes if n.kind == kind)


class BuildError(Exception):
    """A factory failed to create a component; the message names it."""


def build_graph(
    config: Config, components: Registry, settings_for: Callable[[ComponentID, Signal], CreateSettings]
) -> Graph:
    """Create every component of ``config`` and wire them; BuildError names the one that failed."""
    return _Builder(config, components, settings_for).build()


class _Builder:
    """Builds downstream first: extensions, exporters, connectors (whose output pipelines are entries resolved
    later), the processor chains, and the receivers feeding them."""

    def __init__(
        self, config: Config, components: Registry, settings_for: Callable[[ComponentID, Signal], CreateSettings]
    ) -> None:
        self.config = config
        self.components = components
        self.settings_for = settings_for
        self.graph = Graph()
        self.entries = {pid: _PipelineEntry(pid) for pid in config.pipelines}
        # What a pipeline of that signal listing that id exports to: an exporter, or a connector per route.
        self.exporters: dict[tuple[ComponentID, Signal], list[tuple[Node, Exporter | Connector]]] = {}

    def build(self) -> Graph:
        self._extensions()
        self._exporters()
        self._connectors()
        for pid in self.config.pipelines:
            self._processors(pid)
        self._receivers()
        return self.graph

    def _create(
        self,
        kind: NodeKind,
        cid: ComponentID,
        signal: Signal | None,
        pipelines: list[PipelineID],
        make: Callable[[], _C],
    ) -> tuple[Node, _C]:
        try:
            component = make()
        except Exception as exc:
            where = f" (pipeline {', '.join(str(p) for p in pipelines)})" if pipelines else ""
            raise BuildError(f"cannot create {kind} {str(cid)!r}{where}: {exc}") from exc
        node = Node(kind, cid, component, signal, list(pipelines))
        self.graph.nodes.append(node)
        return node, component

    def _listing(self, cid: ComponentID, signal: Signal, role: Literal["receivers", "exporters"]) -> list[PipelineID]:
        return [
            pid for pid, refs in self.config.pipelines.items() if pid.signal is signal and cid in getattr(refs, role)
        ]

    def _extensions(self) -> None:
        for cid in self.config.service_extensions:
            factory = self.components.extensions[cid.type]
            # Extensions belong to no signal; CreateSettings needs one, so they get TRACES.
            make = partial(factory.create, self.settings_for(cid, Signal.TRACES), self.config.extensions[cid])
            self._create("extension", cid, None, [], make)

    def _exporters(self) -> None:
        """One per (id, signal), shared by every pipeline of that signal listing it."""
        for pid, refs in self.config.pipelines.items():
            for cid in refs.exporters:
                if cid in self.config.connectors or (cid, pid.signal) in self.exporters:
                    continue
                factory = self.components.exporters[cid.type]
                users = self._listing(cid, pid.signal, "exporters")
                make = partial(factory.create, self.settings_for(cid, pid.signal), self.config.exporters[cid])
                self.exporters[(cid, pid.signal)] = [self._create("exporter", cid, pid.signal, users, make)]

    def _connectors(self) -> None:
        """One per (id, route) it is used on: an exporter of its input pipelines feeding its output pipelines."""
        for cid in self.config.connectors:
            factory = self.components.connectors[cid.type]
            for signal_in, signal_out in sorted(factory.routes):
                ins = self._listing(cid, signal_in, "exporters")
                outs = self._listing(cid, signal_out, "receivers")
                if not ins or not outs:
                    continue
                fan = PipelinesFanOut([self.entries[p] for p in outs])
                make = partial(factory.create, self.settings_for(cid, signal_in), self.config.connectors[cid], fan)
                made = self._create("connector", cid, signal_in, ins + outs, make)
                self.exporters.setdefault((cid, signal_in), []).append(made)

    def _processors(self, pid: PipelineID) -> None:
        """The pipeline's processor chain (one instance per pipeline), built from its exporters backwards."""
        refs = self.config.pipelines[pid]
        targets = [n for cid in refs.exporters for n in self.exporters.get((cid, pid.signal), [])]
        # Consecutive synchronous processors run as one step (ProcessorRun) before what follows them.
        tail: Consumer = ExportersFanOut([exporter for _, exporter in targets])
        run: list[SyncProcessor] = []  # backwards, like the chain

        def head() -> Consumer:
            return ProcessorRun(run[::-1], tail) if run else tail

        chain: list[Node] = []
        mutates = False
        for cid in reversed(refs.processors):
            factory = self.components.processors[cid.type]
            make = partial(factory.create, self.settings_for(cid, pid.signal), self.config.processors[cid], head())
            node, processor = self._create("processor", cid, pid.signal, [pid], make)
            mutates = mutates or (processor.mutates_data and not processor.reports_changes)
            if isinstance(processor, SyncProcessor):
                run.append(processor)
            else:
                tail, run = processor, []
            chain.append(node)
        self.entries[pid].target = head()
        self.entries[pid].unchanged = not mutates
        self.graph.pipelines[pid] = [*reversed(chain), *(node for node, _ in targets)]

    def _receivers(self) -> None:
        """One per id, whatever its pipelines and signals (one port), with a consumer per signal it serves."""
        seen: set[ComponentID] = set()
        for refs in self.config.pipelines.values():
            for cid in refs.receivers:
                if cid in self.config.connectors or cid in seen:
                    continue
                seen.add(cid)
                consumers: dict[Signal, Consumer] = {}
                users: list[PipelineID] = []
                for signal in Signal:
                    listing = self._listing(cid, signal, "receivers")
                    if listing:
                        consumers[signal] = PipelinesFanOut([self.entries[p] for p in listing])
                        users.extend(listing)
                factory = self.components.receivers[cid.type]
                first = next(iter(consumers))
                make = partial(factory.create, self.settings_for(cid, first), self.config.receivers[cid], consumers)
                node, _ = self._create("receiver", cid, first, users, make)
                for p in users:
                    self.graph.pipelines[p].insert(0, node)

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
from typing import Any

from collector.components import Registry
from collector.config.model import Config, PipelineID
from collector.service.fanout import ExportersFanOut, PipelinesFanOut
from processors.pipeline import ComponentID, Consumer, CreateSettings, Request, Signal, received_as

__all__ = ["Graph", "Node", "build_graph"]

KINDS_START_ORDER = ("extension", "exporter", "connector", "processor", "receiver")


@dataclass
class Node:
    kind: str  # "receiver", "processor", "exporter", "connector", "extension"
    id: ComponentID
    component: Any
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
        self.unchanged = True  # no processor here changes messages: the exporters see them as received

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

    def of_kind(self, kind: str) -> Iterator[Node]:
        return (n for n in self.nodes if n.kind == kind)


class BuildError(Exception):
    """A factory failed to create a component; the message names it."""


def build_graph(
    config: Config, components: Registry, settings_for: Callable[[ComponentID, Signal], CreateSettings]
) -> Graph:
    graph = Graph()

    def create(node_kind: str, cid: ComponentID, pipelines: list[PipelineID], make: Callable[[], Any]) -> Node:
        try:
            component = make()
        except Exception as exc:
            where = f" (pipeline {', '.join(str(p) for p in pipelines)})" if pipelines else ""
            raise BuildError(f"cannot create {node_kind} {str(cid)!r}{where}: {exc}") from exc
        node = Node(node_kind, cid, component, pipelines=list(pipelines))
        graph.nodes.append(node)
        return node

    for cid in config.service_extensions:
        factory = components.extensions[cid.type]
        # Extensions belong to no signal; CreateSettings needs one, so they get TRACES.
        create(
            "extension",
            cid,
            [],
            partial(factory.create, settings_for(cid, Signal.TRACES), config.extensions[cid]),
        )

    entries = {pid: _PipelineEntry(pid) for pid in config.pipelines}

    def pipelines_listing(cid: ComponentID, signal: Signal, role: str) -> list[PipelineID]:
        return [pid for pid, refs in config.pipelines.items() if pid.signal is signal and cid in getattr(refs, role)]

    # Exporters: one per (id, signal).
    exporters: dict[tuple[ComponentID, Signal], list[Node]] = {}
    for pid, refs in config.pipelines.items():
        for cid in refs.exporters:
            if cid in config.connectors or (cid, pid.signal) in exporters:
                continue
            factory = components.exporters[cid.type]
            users = pipelines_listing(cid, pid.signal, "exporters")
            node = create(
                "exporter",
                cid,
                users,
                partial(factory.create, settings_for(cid, pid.signal), config.exporters[cid]),
            )
            node.signal = pid.signal
            exporters[(cid, pid.signal)] = [node]

    # Connectors: one per used route.
    for cid in config.connectors:
        factory = components.connectors[cid.type]
        for signal_in, signal_out in sorted(factory.routes):
            ins = pipelines_listing(cid, signal_in, "exporters")
            outs = pipelines_listing(cid, signal_out, "receivers")
            if not ins or not outs:
                continue
            fan = PipelinesFanOut([entries[p] for p in outs])
            node = create(
                "connector",
                cid,
                ins + outs,
                partial(factory.create, settings_for(cid, signal_in), config.connectors[cid], fan),
            )
            node.signal = signal_in
            exporters.setdefault((cid, signal_in), []).append(node)

    # Processors: a chain per pipeline, built from its exporters' fan-out backwards.
    for pid, refs in config.pipelines.items():
        targets = [n for cid in refs.exporters for n in exporters.get((cid, pid.signal), [])]
        consumer: Consumer = ExportersFanOut([n.component for n in targets])
        chain: list[Node] = []
        for cid in reversed(refs.processors):
            factory = components.processors[cid.type]
            node = create(
                "processor",
                cid,
                [pid],
                partial(factory.create, settings_for(cid, pid.signal), config.processors[cid], consumer),
            )
            node.signal = pid.signal
            consumer = node.component
            chain.append(node)
        entries[pid].target = consumer
        entries[pid].unchanged = not any(getattr(n.component, "mutates_data", True) for n in chain)
        graph.pipelines[pid] = [*reversed(chain), *targets]

    # Receivers: one per id, with a consumer per signal it serves.
    seen: set[ComponentID] = set()
    for refs in config.pipelines.values():
        for cid in refs.receivers:
            if cid in config.connectors or cid in seen:
                continue
            seen.add(cid)
            consumers: dict[Signal, Consumer] = {}
            users = []
            for signal in Signal:
                listing = pipelines_listing(cid, signal, "receivers")
                if listing:
                    consumers[signal] = PipelinesFanOut([entries[p] for p in listing])
                    users.extend(listing)
            factory = components.receivers[cid.type]
            first = next(iter(consumers))
            node = create(
                "receiver",
                cid,
                users,
                partial(factory.create, settings_for(cid, first), config.receivers[cid], consumers),
            )
            node.signal = first
            for p in users:
                graph.pipelines[p].insert(0, node)
    return graph

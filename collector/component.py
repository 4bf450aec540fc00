"""The collector's component model: factories by type name, configs as dataclasses, lifecycles, and the host.

Mirrors the upstream Collector (component/, receiver/, exporter/, connector/, extension/): each component type has a
factory holding its type name, its config dataclass (defaults are the default config) and constructors. The config
decoder (``collector.config``) turns YAML into those dataclasses strictly, then the service builds the pipeline
graph, starts exporters first and receivers last, and stops in reverse.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from processors.pipeline import (
    ComponentID,
    Consumer,
    CreateSettings,
    DataError,
    Duration,
    Processor,
    ProcessorFactory,
    RefusedError,
    Request,
    RetryableError,
    Signal,
    item_count,
    new_request,
)

__all__ = [
    "Component",
    "ComponentID",
    "Connector",
    "ConnectorFactory",
    "Consumer",
    "CreateSettings",
    "DataError",
    "Duration",
    "Exporter",
    "ExporterFactory",
    "Extension",
    "ExtensionFactory",
    "Host",
    "Processor",
    "ProcessorFactory",
    "Receiver",
    "ReceiverFactory",
    "RefusedError",
    "Request",
    "RetryableError",
    "Signal",
    "item_count",
    "new_request",
]


class Host(Protocol):
    """What a running component may ask of the collector."""

    def get_extension(self, id: ComponentID) -> Extension:
        """The started extension with this id; KeyError if it is not configured."""
        ...

    def component_status(self) -> Mapping[str, Mapping[str, Any]]:
        """Per-component health (``{"exporter/otlp": {"healthy": True, ...}}``) for health_check."""
        ...


class Component(abc.ABC):  # noqa: B024 - every hook has a documented default
    """Lifecycle with no-op defaults, as in the SDK's SpanProcessor."""

    async def start(self, host: Host) -> None:  # noqa: B027 - documented no-op default
        pass

    async def shutdown(self) -> None:  # noqa: B027 - documented no-op default
        pass

    def healthy(self) -> bool:
        """False while the component cannot do its job (e.g. an exporter whose peer is unreachable)."""
        return True


class Receiver(Component):
    """Receives data and calls the consumer of the pipeline(s) it belongs to.

    A receiver listed in several pipelines of one signal is one instance (one port) fanning out to all of them.
    """


class Exporter(Component):
    """The end of a pipeline. ``consume`` returns once the data is accepted: sent, or durably queued."""

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...


class Connector(Component):
    """An exporter in one pipeline that is a receiver in another (e.g. spanmetrics: traces in, metrics out)."""

    @abc.abstractmethod
    async def consume(self, signal: Signal, request: Request) -> None: ...


class Extension(Component):
    """Not in any pipeline: health_check, file_storage, bearertokenauth."""


@dataclass(frozen=True)
class ReceiverFactory:
    type: str
    config_type: builtins.type[Any]
    # (settings, config, consumers by signal) -> Receiver; settings.signal is the first signal it serves.
    create: Callable[[CreateSettings, Any, Mapping[Signal, Consumer]], Receiver]
    signals: frozenset[Signal] = frozenset(Signal)


@dataclass(frozen=True)
class ExporterFactory:
    type: str
    config_type: builtins.type[Any]
    create: Callable[[CreateSettings, Any], Exporter]
    signals: frozenset[Signal] = frozenset(Signal)


@dataclass(frozen=True)
class ConnectorFactory:
    type: str
    config_type: builtins.type[Any]
    # (settings, config, consumer of the pipelines it feeds) -> Connector
    create: Callable[[CreateSettings, Any, Consumer], Connector]
    # (signal it consumes, signal it emits)
    routes: frozenset[tuple[Signal, Signal]] = frozenset()


@dataclass(frozen=True)
class ExtensionFactory:
    type: str
    config_type: builtins.type[Any]
    create: Callable[[CreateSettings, Any], Extension]

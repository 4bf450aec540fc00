"""The collector's component model: factories by type name, configs as dataclasses, lifecycles, and the host.

Mirrors the upstream Collector (component/, receiver/, exporter/, connector/, extension/): each component type has a
factory holding its type name, its config dataclass (defaults are the default config) and constructors, typed by
that dataclass (``ExporterFactory[DebugConfig]``). The config decoder (``collector.confmap``) turns YAML into those
dataclasses strictly, then the service builds the pipeline graph, starts exporters first and receivers last, and
stops in reverse.

The contract itself lives in ``processors.pipeline`` (the lowest room, so the pipeline processors share it); this
module is its name on the collector side.
"""

from __future__ import annotations

from processors.pipeline import (
    Authenticator,
    Component,
    ComponentID,
    ConfigT,
    Connector,
    ConnectorFactory,
    Consumer,
    CreateSettings,
    DataError,
    Duration,
    Exporter,
    ExporterFactory,
    Extension,
    ExtensionFactory,
    Host,
    Processor,
    ProcessorFactory,
    Receiver,
    ReceiverFactory,
    RefusedError,
    Request,
    RetryableError,
    Signal,
    item_count,
    new_request,
    with_alias,
)

__all__ = [
    "Authenticator",
    "Component",
    "ComponentID",
    "ConfigT",
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
    "with_alias",
]

"""Every component type the collector knows, looked up by its Collector type name.

Each module listed here exposes ``factories``: a sequence of factories (one module may register aliases, e.g.
``otlp`` and ``otlp_grpc``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

_MODULES: dict[str, tuple[str, ...]] = {
    "receivers": ("collector.receivers.otlp",),
    "processors": (
        "processors.memory_limiter",
        "processors.batch",
        "processors.attributes",
        "processors.resource",
        "processors.filter",
        "processors.redaction",
        "processors.correlation",
        "processors.business",
        "processors.cost",
    ),
    "exporters": (
        "collector.exporters.otlp",
        "collector.exporters.otlphttp",
        "collector.exporters.prometheus",
        "collector.exporters.debug",
        "collector.exporters.postgres",
    ),
    "connectors": ("collector.connectors.spanmetrics",),
    "extensions": (
        "collector.extensions.health_check",
        "collector.extensions.file_storage",
        "collector.extensions.bearertokenauth",
        "collector.analytics.extension",
    ),
}


@dataclass(frozen=True)
class Registry:
    receivers: dict[str, Any]
    processors: dict[str, Any]
    exporters: dict[str, Any]
    connectors: dict[str, Any]
    extensions: dict[str, Any]

    def kind(self, kind: str) -> dict[str, Any]:
        return dict(getattr(self, kind))


def registry() -> Registry:
    kinds: dict[str, dict[str, Any]] = {}
    for kind, modules in _MODULES.items():
        found: dict[str, Any] = {}
        for name in modules:
            module = importlib.import_module(name)
            for factory in module.factories:
                found[factory.type] = factory
        kinds[kind] = found
    return Registry(**kinds)

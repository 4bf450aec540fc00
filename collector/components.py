"""Every component type the collector knows, looked up by its Collector type name.

Each component module exposes ``factories``: a sequence of factories (one module may register aliases, e.g.
``otlp`` and ``otlp_grpc``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

from collector.analytics import extension as analytics
from collector.connectors import spanmetrics
from collector.exporters import debug, otlphttp, postgres, prometheus
from collector.exporters import otlp as otlp_exporter
from collector.extensions import bearertokenauth, file_storage, health_check
from collector.receivers import otlp as otlp_receiver
from processors import attributes, batch, business, correlation, cost, filter, memory_limiter, redaction, resource
from processors.pipeline import (
    ConnectorFactory,
    ExporterFactory,
    ExtensionFactory,
    ProcessorFactory,
    ReceiverFactory,
)

__all__ = ["KINDS", "AnyFactory", "Kind", "Registry", "merge_registries", "registry"]

Kind: TypeAlias = Literal["receivers", "processors", "exporters", "connectors", "extensions"]
KINDS: tuple[Kind, ...] = ("receivers", "processors", "exporters", "connectors", "extensions")

# A registry holds factories of many config types at once, and Python has no existential type: the config type
# parameter is Any here. The config loader decodes each component's section into exactly its factory's
# ``config_type``, which is what makes ``factory.create(settings, config.exporters[id])`` sound.
AnyFactory: TypeAlias = (
    ReceiverFactory[Any] | ProcessorFactory[Any] | ExporterFactory[Any] | ConnectorFactory[Any] | ExtensionFactory[Any]
)
_F = TypeVar("_F", bound=AnyFactory)


@dataclass(frozen=True)
class Registry:
    receivers: Mapping[str, ReceiverFactory[Any]]
    processors: Mapping[str, ProcessorFactory[Any]]
    exporters: Mapping[str, ExporterFactory[Any]]
    connectors: Mapping[str, ConnectorFactory[Any]]
    extensions: Mapping[str, ExtensionFactory[Any]]

    def kind(self, kind: Kind) -> Mapping[str, AnyFactory]:
        found: Mapping[str, AnyFactory] = getattr(self, kind)
        return found


def _by_type(*modules_factories: Iterable[_F]) -> dict[str, _F]:
    return {factory.type: factory for factories in modules_factories for factory in factories}


def registry() -> Registry:
    """The built-in components."""
    return Registry(
        receivers=_by_type(otlp_receiver.factories),
        processors=_by_type(
            memory_limiter.factories,
            batch.factories,
            attributes.factories,
            resource.factories,
            filter.factories,
            redaction.factories,
            correlation.factories,
            business.factories,
            cost.factories,
        ),
        exporters=_by_type(
            otlp_exporter.factories,
            otlphttp.factories,
            prometheus.factories,
            debug.factories,
            postgres.factories,
        ),
        connectors=_by_type(spanmetrics.factories),
        extensions=_by_type(
            health_check.factories,
            file_storage.factories,
            bearertokenauth.factories,
            analytics.factories,
        ),
    )


def merge_registries(base: Registry, extra: Registry | None) -> Registry:
    """``base`` with ``extra``'s factories added (tests inject their own components this way)."""
    if extra is None:
        return base
    return Registry(
        receivers={**base.receivers, **extra.receivers},
        processors={**base.processors, **extra.processors},
        exporters={**base.exporters, **extra.exporters},
        connectors={**base.connectors, **extra.connectors},
        extensions={**base.extensions, **extra.extensions},
    )

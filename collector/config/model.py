"""The decoded collector config: components by id, pipelines by id, and the service section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processors.pipeline import ComponentID, Signal

__all__ = [
    "DEFAULT_TELEMETRY_METRICS_ADDRESS",
    "Config",
    "PipelineConfig",
    "PipelineID",
    "ServiceConfig",
    "TelemetryConfig",
    "TelemetryLogsConfig",
    "TelemetryMetricsConfig",
]

# The collector's own metrics (collector.telemetry) are served here unless service.telemetry says otherwise.
DEFAULT_TELEMETRY_METRICS_ADDRESS = "127.0.0.1:8888"
DEFAULT_TELEMETRY_METRICS_LEVEL = "normal"
DEFAULT_TELEMETRY_LOGS_LEVEL = "info"


@dataclass(frozen=True, order=True)
class PipelineID:
    """``traces``, ``metrics/backend``: a signal and an optional name."""

    signal: Signal
    name: str = ""

    def __str__(self) -> str:
        return f"{self.signal.value}/{self.name}" if self.name else self.signal.value


@dataclass
class PipelineConfig:
    receivers: list[str] = field(default_factory=list)
    processors: list[str] = field(default_factory=list)
    exporters: list[str] = field(default_factory=list)


@dataclass
class TelemetryMetricsConfig:
    # "none" turns the collector's own metrics endpoint off; "basic", "normal", "detailed" as upstream.
    level: str = DEFAULT_TELEMETRY_METRICS_LEVEL
    # Upstream's older single-address form; `readers` (upstream's current form) wins when it names a
    # prometheus pull reader.
    address: str = DEFAULT_TELEMETRY_METRICS_ADDRESS
    readers: list[dict[str, Any]] = field(default_factory=list)

    def endpoint(self) -> str | None:
        """host:port to serve the collector's own metrics on, or None when the level is 'none'."""
        if self.level == "none":
            return None
        for reader in self.readers:
            prom = ((reader.get("pull") or {}).get("exporter") or {}).get("prometheus")
            if isinstance(prom, dict):
                return f"{prom.get('host', '127.0.0.1')}:{prom.get('port', 8888)}"
        return self.address


@dataclass
class TelemetryLogsConfig:
    level: str = DEFAULT_TELEMETRY_LOGS_LEVEL
    encoding: str = "console"


@dataclass
class TelemetryConfig:
    metrics: TelemetryMetricsConfig = field(default_factory=TelemetryMetricsConfig)
    logs: TelemetryLogsConfig = field(default_factory=TelemetryLogsConfig)


@dataclass
class ServiceConfig:
    extensions: list[ComponentID] = field(default_factory=list)
    pipelines: dict[PipelineID, PipelineConfig] = field(default_factory=dict)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)


@dataclass
class PipelineRefs:
    """A pipeline's component ids, parsed."""

    receivers: list[ComponentID]
    processors: list[ComponentID]
    exporters: list[ComponentID]


@dataclass
class Config:
    """A whole, validated collector config; component configs are instances of their ``config_type``."""

    receivers: dict[ComponentID, Any] = field(default_factory=dict)
    processors: dict[ComponentID, Any] = field(default_factory=dict)
    exporters: dict[ComponentID, Any] = field(default_factory=dict)
    connectors: dict[ComponentID, Any] = field(default_factory=dict)
    extensions: dict[ComponentID, Any] = field(default_factory=dict)
    service_extensions: list[ComponentID] = field(default_factory=list)
    pipelines: dict[PipelineID, PipelineRefs] = field(default_factory=dict)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    warnings: list[str] = field(default_factory=list)
    # The factories this config was validated against; the service builds from the same ones.
    components: Any = None

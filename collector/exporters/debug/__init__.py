"""``debug`` exporter: prints telemetry to stderr (verbosity basic | normal | detailed)."""

from __future__ import annotations

from collector.component import ExporterFactory

from .config import DEFAULT_SAMPLING_INITIAL, DEFAULT_SAMPLING_THEREAFTER, DEFAULT_VERBOSITY, DebugConfig, Verbosity
from .exporter import LOGGER_NAME, DebugExporter

__all__ = [
    "DEFAULT_SAMPLING_INITIAL",
    "DEFAULT_SAMPLING_THEREAFTER",
    "DEFAULT_VERBOSITY",
    "LOGGER_NAME",
    "DebugConfig",
    "DebugExporter",
    "Verbosity",
    "factories",
]


factories = (ExporterFactory(type="debug", config_type=DebugConfig, create=DebugExporter),)

"""Collector config: the upstream Collector's YAML schema, decoded strictly into config dataclasses."""

from collector.config.decode import parse_duration
from collector.config.loader import ConfigError, load_config, merge_registries, parse_config
from collector.config.model import Config, PipelineID, PipelineRefs, TelemetryConfig

__all__ = [
    "Config",
    "ConfigError",
    "PipelineID",
    "PipelineRefs",
    "TelemetryConfig",
    "load_config",
    "merge_registries",
    "parse_config",
    "parse_duration",
]

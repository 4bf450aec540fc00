"""Collector config: the upstream Collector's YAML schema, decoded strictly into config dataclasses.

``collector.config.loader`` loads a whole config and validates it against every component's factory; components
read their own sections through ``collector.config.sections``. This face names only the parts below the
components (decoding, the model, the error), so importing a section reader does not load the registry of the
components that import it.
"""

from collector.config.decode import parse_duration
from collector.config.model import Config, PipelineID, PipelineRefs, TelemetryConfig
from collector.config.sections import ConfigError

__all__ = ["Config", "ConfigError", "PipelineID", "PipelineRefs", "TelemetryConfig", "parse_duration"]

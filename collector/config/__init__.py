"""Collector config, as the upstream Collector's ``otelcol`` config: the model of a whole config, the loader that
validates one against every component's factory (``collector.config.loader``) and the reference generated from
the config dataclasses (``collector.config.reference``).

Reading YAML, expansion and strict decoding sit below the components in ``collector.confmap``; this package sits
above them, since the loader imports the registry of every component.
"""

from collector.config.model import Config, PipelineID, PipelineRefs, TelemetryConfig

__all__ = ["Config", "PipelineID", "PipelineRefs", "TelemetryConfig"]

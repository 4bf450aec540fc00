"""Config maps, as the upstream Collector's ``confmap``: reading YAML, ``${env:…}`` expansion, strict decoding into
config dataclasses, and one component's section of a file.

Components import this package (the postgres exporter and the analytics extension read their own section of a
config file through ``sections.component_config``); it knows no component, so it sits below all of them. The
loader that validates a whole config against every component's factory is ``collector.config``, above them.
"""

from collector.confmap.decode import decode, parse_duration
from collector.confmap.sections import ConfigError, component_config

__all__ = ["ConfigError", "component_config", "decode", "parse_duration"]

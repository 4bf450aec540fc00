"""Config of the ``debug`` exporter (upstream exporter/debugexporter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.confmap.bounds import at_least

__all__ = ["DEFAULT_SAMPLING_INITIAL", "DEFAULT_SAMPLING_THEREAFTER", "DEFAULT_VERBOSITY", "DebugConfig", "Verbosity"]

Verbosity = Literal["basic", "normal", "detailed"]
DEFAULT_VERBOSITY: Verbosity = "basic"
# Per second: log the first 2 messages, then every `thereafter`-th (1 = all), as upstream's zap sampler.
DEFAULT_SAMPLING_INITIAL = 2
DEFAULT_SAMPLING_THEREAFTER = 1


@dataclass
class DebugConfig:
    verbosity: Verbosity = DEFAULT_VERBOSITY
    sampling_initial: int = field(default=DEFAULT_SAMPLING_INITIAL, metadata=at_least(0))
    sampling_thereafter: int = field(default=DEFAULT_SAMPLING_THEREAFTER, metadata=at_least(1))
    # Upstream: print the config's verbosity-independent counts; kept for compatibility, no effect here.
    use_internal_logger: bool = True

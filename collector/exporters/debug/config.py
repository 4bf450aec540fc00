"""Config of the ``debug`` exporter (upstream exporter/debugexporter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_SAMPLING_INITIAL", "DEFAULT_SAMPLING_THEREAFTER", "DEFAULT_VERBOSITY", "DebugConfig", "Verbosity"]

Verbosity = Literal["basic", "normal", "detailed"]
DEFAULT_VERBOSITY: Verbosity = "basic"
# Per second: log the first 2 messages, then every `thereafter`-th (1 = all), as upstream's zap sampler.
DEFAULT_SAMPLING_INITIAL = 2
DEFAULT_SAMPLING_THEREAFTER = 1


@dataclass
class DebugConfig:
    verbosity: Verbosity = DEFAULT_VERBOSITY
    sampling_initial: int = DEFAULT_SAMPLING_INITIAL
    sampling_thereafter: int = DEFAULT_SAMPLING_THEREAFTER
    # Upstream: print the config's verbosity-independent counts; kept for compatibility, no effect here.
    use_internal_logger: bool = True

    def validate(self) -> list[str]:
        errors = []
        if self.sampling_initial < 0:
            errors.append(f"sampling_initial: must be >= 0, got {self.sampling_initial}")
        if self.sampling_thereafter < 1:
            errors.append(f"sampling_thereafter: must be >= 1, got {self.sampling_thereafter}")
        return errors

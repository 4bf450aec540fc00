"""Value bounds declared once on a config field: the decoder checks them and the reference shows them.

A numeric field states its range where it is declared::

    num_consumers: int = field(default=DEFAULT_NUM_CONSUMERS, metadata=above(0))
    multiplier: float = field(default=DEFAULT_MULTIPLIER, metadata=at_least(1))
    randomization_factor: float = field(default=DEFAULT_RANDOMIZATION_FACTOR, metadata=between(0, 1))

A value written in a config outside its range is an error naming the key's full path, as every other decoding
problem (``exporters.otlp.retry_on_failure.multiplier: must be >= 1, got 0.5``). Rules that compare two fields
stay in the config's ``validate()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Bounds", "above", "at_least", "between", "field_bounds"]

_KEY = "bounds"


@dataclass(frozen=True)
class Bounds:
    """``low <= value`` (``low < value`` when ``strict``), and ``value <= high`` when ``high`` is set."""

    low: float
    strict: bool = False
    high: float | None = None

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None."""
        if self.high is not None:
            if self.low <= value <= self.high:
                return None
            return f"must be between {self.low:g} and {self.high:g}, got {value}"
        if value > self.low or (value == self.low and not self.strict):
            return None
        return f"must be {'>' if self.strict else '>='} {self.low:g}, got {value}"

    def text(self) -> str:
        """The range as the reference shows it: ``>= 1``, ``> 0``, ``0 to 1``."""
        if self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return f"{'>' if self.strict else '>='} {self.low:g}"


def at_least(low: float) -> Mapping[str, Bounds]:
    """Field metadata: the value must be ``>= low``."""
    return {_KEY: Bounds(low)}


def above(low: float) -> Mapping[str, Bounds]:
    """Field metadata: the value must be ``> low``."""
    return {_KEY: Bounds(low, strict=True)}


def between(low: float, high: float) -> Mapping[str, Bounds]:
    """Field metadata: the value must be within ``low`` and ``high``, both included."""
    return {_KEY: Bounds(low, high=high)}


def field_bounds(f: dataclasses.Field[Any]) -> Bounds | None:
    """The bounds declared on a dataclass field, if any."""
    found = f.metadata.get(_KEY)
    return found if isinstance(found, Bounds) else None

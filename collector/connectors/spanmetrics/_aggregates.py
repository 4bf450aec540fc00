"""Per-series aggregates the connector keeps between flushes: a counter and an (explicit or exponential)
histogram.

These are the hot path's state: recording a span is a dict lookup, an increment and a bisect.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

# Start fine, then halve resolution as the observed range grows (as the SDK's exponential aggregation does).
_INITIAL_SCALE = 20


@dataclass(slots=True)
class Exemplar:
    trace_id: bytes
    span_id: bytes
    value: float
    time_unix_nano: int


@dataclass(slots=True)
class Series:
    attributes: list[KeyValue]
    start_time_unix_nano: int
    last_updated_unix_nano: int = 0
    count: int = 0
    sum: float = 0.0
    bucket_counts: list[int] | None = None
    exponential: ExponentialBuckets | None = None
    exemplars: list[Exemplar] = field(default_factory=list)

    def add_exemplar(self, ex: Exemplar, limit: int) -> None:
        if len(self.exemplars) >= limit:
            del self.exemplars[0]  # keep the most recent ones
        self.exemplars.append(ex)


def record_explicit(counts: list[int], bounds: list[float], value: float) -> None:
    counts[bisect_left(bounds, value)] += 1


@dataclass(slots=True)
class ExponentialBuckets:
    """Positive-only exponential buckets (durations are ≥ 0), at most ``max_size`` wide."""

    max_size: int
    scale: int = _INITIAL_SCALE
    zero_count: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    low: int = 0
    high: int = -1

    def record(self, value: float) -> None:
        if value <= 0:
            self.zero_count += 1
            return
        index = self._index(value)
        if self.high < self.low:
            self.low = self.high = index
        else:
            low, high = min(self.low, index), max(self.high, index)
            if high - low + 1 > self.max_size:
                shift = 0
                while (high >> shift) - (low >> shift) + 1 > self.max_size:
                    shift += 1
                self._downscale(shift)
                index >>= shift
                low, high = min(self.low, index), max(self.high, index)
            self.low, self.high = low, high
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def _index(self, value: float) -> int:
        # Bucket i holds (base**i, base**(i+1)], base = 2**(2**-scale).
        return math.ceil(math.log2(value) * (2.0**self.scale)) - 1

    def _downscale(self, shift: int) -> None:
        merged: dict[int, int] = {}
        for index, n in self.buckets.items():
            merged[index >> shift] = merged.get(index >> shift, 0) + n
        self.buckets = merged
        self.scale -= shift
        self.low >>= shift
        self.high >>= shift

    def dense(self) -> tuple[int, list[int]]:
        """(offset, counts) for the OTLP message."""
        if self.high < self.low:
            return 0, []
        return self.low, [self.buckets.get(i, 0) for i in range(self.low, self.high + 1)]

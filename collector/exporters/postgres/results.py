"""What one write of the sink did, summed over the chunks it is written in (``PostgresWriter.write_batch``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["WriteResult"]


@dataclass
class WriteResult:
    items: int = 0
    inserted: int = 0
    repaired: int = 0
    quarantined: int = 0
    quarantine_reasons: list[str] = field(default_factory=list)
    # Cumulative metric points not stored because their stream had not changed since its last stored point.
    unchanged: int = 0
    # Earliest start (µs since the epoch) of the spans inserted: rollup rows from there on may need compaction.
    earliest_span_us: int | None = None

    def add(self, part: WriteResult) -> None:
        """Count ``part`` in: every other field summed, so that a figure added later is not dropped between chunks;
        the earliest start is the minimum."""
        for f in fields(self):
            if f.name != "earliest_span_us":
                setattr(self, f.name, getattr(self, f.name) + getattr(part, f.name))
        starts = [s for s in (self.earliest_span_us, part.earliest_span_us) if s is not None]
        self.earliest_span_us = min(starts, default=None)

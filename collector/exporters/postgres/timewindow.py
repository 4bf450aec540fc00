"""Time checked at the door: which items the sink stores, by the timestamp that picks their partition.

Client clocks decide where a row lands. A span dated 2554 would sit in a partition retention never drops, one dated
1970 would be stored and then silently deleted by the next retention pass, and 200 spans on 200 different days would
create 600 partitions from one request. So an item is stored only if its timestamps lie in
``[now - retention, now + allowed_clock_skew]``; any other goes to the ``quarantine`` table with the reason and the
offending time (``item_time``), serialized, so it can be replayed once fixed. Items are not clamped: a clamped time
would be a made-up fact in every query that reads it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

__all__ = ["Late", "TimeWindow", "iso_us"]

_R = TypeVar("_R")


def iso_us(us: int) -> str:
    """``2554-07-21T23:34:33Z`` for µs since the Unix epoch."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Late:
    """An item refused at the door: why, and the timestamp (µs) that was out of the window."""

    record: Any
    reason: str
    time_us: int


@dataclass(frozen=True)
class TimeWindow:
    """``retention``: seconds kept (0: forever, no lower bound); ``skew``: seconds a client clock may run ahead."""

    retention: float
    skew: float

    def split(
        self, records: Sequence[_R], columns: Sequence[tuple[int, str]], now_us: int | None = None
    ) -> tuple[list[_R], list[Late]]:
        """(records inside the window, the others): each record's ``row[i]`` for every ``(i, column name)``."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        lo = now_us - int(self.retention * 1_000_000) if self.retention > 0 else None
        hi = now_us + int(self.skew * 1_000_000)
        inside: list[_R] = []
        late: list[Late] = []
        for record in records:
            row = record.row  # type: ignore[attr-defined]
            for index, column in columns:
                t = row[index]
                if t > hi:
                    reason = f"{column} {iso_us(t)} is after now + allowed_clock_skew ({_span_text(self.skew)})"
                elif lo is not None and t < lo:
                    reason = f"{column} {iso_us(t)} is before now - retention ({_span_text(self.retention)})"
                else:
                    continue
                late.append(Late(record, f"{reason}: not stored", t))
                break
            else:
                inside.append(record)
        return inside, late

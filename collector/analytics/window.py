"""Time windows and filters shared by every analytics query, and how they are parsed from the CLI and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_HOURS",
    "FILTER_NAMES",
    "GRANULARITIES",
    "NO_FILTERS",
    "RAW_WINDOW_LIMIT",
    "ROLLUP_KEYS",
    "Filters",
    "TimeWindow",
    "parse_time",
]

DEFAULT_HOURS = 24.0
# Windows up to this long read raw spans (exact); longer ones read span_rollups_1h (docs/analytics.md).
RAW_WINDOW_LIMIT = timedelta(days=1)
GRANULARITIES = ("hour", "day", "week", "month")
# The keys (filters, breakdowns) span_rollups_1h and its caches carry; a query on any other reads raw spans.
ROLLUP_KEYS = frozenset({"service", "operation", "tenant", "agent", "model"})
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNIT = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (``2026-11-01``, ``2026-11-01T12:00:00Z``; naive means UTC) or relative ``7d``/``12h``/``30m``/``2w``
    (that long before ``now``)."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time (2026-11-01T12:00:00Z) or a relative one (12h, 7d, 2w), got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window: until ({self.end.isoformat()}) must be after since ({self.start.isoformat()})")

    @classmethod
    def last(cls, hours: float, now: datetime | None = None) -> TimeWindow:
        now = now or datetime.now(UTC)
        return cls(now - timedelta(hours=hours), now)

    @classmethod
    def parse(
        cls,
        hours: float | None = None,
        since: str | None = None,
        until: str | None = None,
        now: datetime | None = None,
        default_hours: float = DEFAULT_HOURS,
    ) -> TimeWindow:
        """From ``--hours`` or ``--since``/``--until`` (not both); errors name the option."""
        now = now or datetime.now(UTC)
        if hours is not None and since is not None:
            raise ValueError("--hours and --since are exclusive: give one")
        if hours is not None and hours <= 0:
            raise ValueError(f"--hours must be > 0, got {hours:g}")
        end = parse_time(until, now) if until else now
        if since:
            return cls(parse_time(since, now), end)
        return cls(end - timedelta(hours=hours if hours is not None else default_hours), end)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def uses_rollups(self) -> bool:
        return self.duration > RAW_WINDOW_LIMIT

    def rollup_aligned(self) -> TimeWindow:
        """The hour-aligned window that span_rollups_1h can answer: start floored, end ceiled to the hour."""
        start = self.start.replace(minute=0, second=0, microsecond=0)
        end = self.end.replace(minute=0, second=0, microsecond=0)
        if end < self.end:
            end += timedelta(hours=1)
        return TimeWindow(start, end)


@dataclass(frozen=True)
class Filters:
    service: str | None = None
    operation: str | None = None
    tenant: str | None = None
    user: str | None = None
    agent: str | None = None
    model: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def rollup_compatible(self) -> bool:
        """Whether span_rollups_1h carries every key filtered on (``ROLLUP_KEYS``)."""
        return all(name in ROLLUP_KEYS for name, _ in self.items())


NO_FILTERS = Filters()
# The filter names every face takes (API and page parameters, CLI options), in the order of Filters' fields.
FILTER_NAMES = tuple(f.name for f in fields(Filters))

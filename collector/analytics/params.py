"""Query parameters of the analytics API, parsed with errors that name the parameter.

Every value a client sends is checked here before it reaches a query: numbers must be finite, integers within
PostgreSQL's range, text free of NUL (which PostgreSQL text cannot hold), windows within ``MAX_WINDOW``. A bad
value is a 400 naming the parameter, never a database error.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.datastructures import QueryParams

from .queries import DEFAULT_LIMIT
from .window import FILTER_NAMES, Filters, TimeWindow, parse_time

__all__ = ["MAX_OFFSET", "MAX_WINDOW", "ApiError", "QueryArgs", "checked_text"]

# Pages beyond this are refused rather than sent to PostgreSQL (whose OFFSET is a bigint).
MAX_OFFSET = 1_000_000_000
# The longest window a query may ask for: longer than any retention, short enough that every date is valid.
MAX_WINDOW = timedelta(days=3660)
# Text parameters longer than this are refused (names, ids and times are far shorter).
MAX_TEXT = 4096


class ApiError(ValueError):
    """A refusal with its HTTP status (400 unless told), answered as ``{"error": ..., "suggestions"?: [...]}``."""

    def __init__(self, message: str, status: int = 400, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.suggestions = suggestions


def checked_text(name: str, value: str) -> str:
    """``value`` if PostgreSQL can hold it as text and it is of a sane length; else an ApiError naming ``name``."""
    if "\x00" in value:
        raise ApiError(f"{name}: must not contain a NUL character")
    if len(value) > MAX_TEXT:
        raise ApiError(f"{name}: longer than {MAX_TEXT} characters")
    return value


@dataclass
class QueryArgs:
    params: QueryParams
    max_limit: int

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None else checked_text(name, value)

    def list(self, name: str) -> builtins.list[str]:
        return [checked_text(name, v) for v in self.params.getlist(name)]

    def number(self, name: str, default: float | None = None) -> float | None:
        text = self.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ApiError(f"{name}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ApiError(f"{name}: expected a finite number, got {text!r}")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        text = self.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(f"{name}: expected an integer, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise ApiError(f"{name}: must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default) or default
        if value not in choices:
            raise ApiError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def window(self, default_hours: float = 24.0) -> TimeWindow:
        hours = self.number("hours")
        if hours is not None and hours > MAX_WINDOW.total_seconds() / 3600.0:
            raise ApiError(f"hours: at most {MAX_WINDOW.days * 24}, got {hours:g}")
        now = datetime.now(UTC)
        since, until = self.get("since"), self.get("until")
        for name, text in (("since", since), ("until", until)):
            if not text:
                continue
            try:
                parse_time(text, now)
            except ValueError as exc:
                raise ApiError(f"{name}: {exc}") from None
            except OverflowError:
                raise ApiError(f"{name}: out of range, got {text[:40]!r}") from None
        try:
            window = TimeWindow.parse(hours, since, until, now, default_hours=default_hours)
        except OverflowError:  # a relative time or date arithmetic beyond datetime's years 1..9999
            raise ApiError("since/until: out of range") from None
        except ValueError as exc:
            raise ApiError(str(exc).replace("--", "")) from None
        if window.duration > MAX_WINDOW:
            raise ApiError(f"since/until: the window may span at most {MAX_WINDOW.days} days")
        return window

    def filters(self) -> Filters:
        return Filters(*(self.get(k) for k in FILTER_NAMES))

    def page(self) -> tuple[int, int]:
        limit = self.integer("limit", DEFAULT_LIMIT, low=1, high=2**31 - 1)
        offset = self.integer("offset", 0, low=0, high=MAX_OFFSET)
        return min(limit, self.max_limit), offset

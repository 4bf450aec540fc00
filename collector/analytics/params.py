"""Query parameters of the analytics API, parsed with errors that name the parameter."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from .queries import DEFAULT_LIMIT
from .window import Filters, TimeWindow

__all__ = ["FILTER_NAMES", "ApiError", "QueryArgs"]

FILTER_NAMES = ("service", "operation", "tenant", "user", "agent", "model")


class ApiError(ValueError):
    """A refusal with its HTTP status (400 unless told), answered as ``{"error": ..., "suggestions"?: [...]}``."""

    def __init__(self, message: str, status: int = 400, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.suggestions = suggestions


@dataclass
class QueryArgs:
    params: QueryParams
    max_limit: int

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def list(self, name: str) -> builtins.list[str]:
        return self.params.getlist(name)

    def number(self, name: str, default: float | None = None) -> float | None:
        text = self.get(name)
        if text is None:
            return default
        try:
            return float(text)
        except ValueError:
            raise ApiError(f"{name}: expected a number, got {text!r}") from None

    def integer(self, name: str, default: int) -> int:
        text = self.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(f"{name}: expected an integer, got {text!r}") from None

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default) or default
        if value not in choices:
            raise ApiError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def window(self, default_hours: float = 24.0) -> TimeWindow:
        try:
            return TimeWindow.parse(
                self.number("hours"), self.get("since"), self.get("until"), default_hours=default_hours
            )
        except ValueError as exc:
            raise ApiError(str(exc).replace("--", "")) from None

    def filters(self) -> Filters:
        return Filters(*(self.get(k) for k in FILTER_NAMES))

    def page(self) -> tuple[int, int]:
        limit = self.integer("limit", DEFAULT_LIMIT)
        offset = self.integer("offset", 0)
        if limit < 1 or offset < 0:
            raise ApiError("limit must be >= 1 and offset >= 0")
        return min(limit, self.max_limit), offset

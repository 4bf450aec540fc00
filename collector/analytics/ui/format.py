"""Jinja2 filters for numbers, durations, money and times as the pages show them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

__all__ = ["duration", "install", "usd"]

# Shown for a missing value.
NONE = "\u2013"


def duration(ms: float | None) -> str:
    if ms is None:
        return NONE
    if ms == 0:
        return "0 ms"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 1000:
        return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "$0"
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value < 0.01:
        return sign + f"${value:.6f}".rstrip("0")
    return sign + (f"${value:,.2f}" if value >= 1 else f"${value:.4f}")


def percent(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def count(value: int | float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def when(value: datetime | None) -> str:
    return NONE if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def rate(value: float | None) -> str:
    return NONE if value is None else f"{value:.3g}"


def script_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> block: '<', '>' and '&' escaped so no text can close it."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def install(env: Environment) -> None:
    env.filters.update(
        duration=duration, usd=usd, percent=percent, count=count, when=when, rate=rate, script_json=script_json
    )

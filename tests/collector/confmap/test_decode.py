"""Strict decoding of config values: Go-style durations."""

from __future__ import annotations

from typing import Any

import pytest

from collector.confmap import decode, parse_duration
from processors.pipeline import Duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        (2, 2.0),
        (0.5, 0.5),
        ("1.5s", 1.5),
        ("0", 0.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "5 s", "s", "-", True, "1d"])
def test_bad_durations(text: Any) -> None:
    errors: list[str] = []
    decode(Duration, text, "x.timeout", errors)
    assert len(errors) == 1 and errors[0].startswith("x.timeout: expected a duration")

"""Value bounds declared on config fields: checked by the decoder with the key's full path, shown in the reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from collector.config.reference import key_rows
from collector.confmap import decode
from collector.confmap.bounds import above, at_least, between
from processors.pipeline import Duration


@dataclass
class Inner:
    size: int = field(default=4, metadata=above(0))


@dataclass
class Sample:
    count: int = field(default=1, metadata=at_least(1))
    timeout: Duration = field(default=Duration(5.0), metadata=at_least(0))
    factor: float = field(default=0.5, metadata=between(0, 1))
    limit: int | None = field(default=None, metadata=at_least(0))
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)


def _errors(value: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    decode(Sample, value, "exporters.x", errors)
    return errors


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"count": 0}, "exporters.x.count: must be >= 1, got 0"),
        ({"timeout": "-1s"}, "exporters.x.timeout: must be >= 0, got -1.0"),
        ({"factor": 1.5}, "exporters.x.factor: must be between 0 and 1, got 1.5"),
        ({"factor": -0.1}, "exporters.x.factor: must be between 0 and 1, got -0.1"),
        ({"limit": -1}, "exporters.x.limit: must be >= 0, got -1"),
        ({"inner": {"size": 0}}, "exporters.x.inner.size: must be > 0, got 0"),
        ({"items": [{"size": 1}, {"size": -2}]}, "exporters.x.items[1].size: must be > 0, got -2"),
    ],
)
def test_a_value_outside_its_bounds_is_an_error_naming_its_path(value: dict[str, Any], message: str) -> None:
    assert _errors(value) == [message]


@pytest.mark.parametrize(
    "value",
    [{"count": 1}, {"timeout": 0}, {"factor": 0}, {"factor": 1}, {"limit": None}, {"limit": 0}, {"inner": {"size": 1}}],
)
def test_values_on_the_edge_of_their_bounds_are_accepted(value: dict[str, Any]) -> None:
    assert _errors(value) == []


def test_a_value_of_the_wrong_type_is_reported_once_not_also_as_out_of_bounds() -> None:
    assert _errors({"count": "many"}) == ["exporters.x.count: expected an integer, got string 'many'"]


def test_every_problem_is_reported() -> None:
    assert _errors({"count": 0, "factor": 2}) == [
        "exporters.x.count: must be >= 1, got 0",
        "exporters.x.factor: must be between 0 and 1, got 2.0",
    ]


def test_the_reference_shows_each_range_in_the_type_column() -> None:
    types = {row.path: row.yaml_type for row in key_rows(Sample)}
    assert types["count"] == "int, >= 1"
    assert types["timeout"] == "duration, >= 0"
    assert types["factor"] == "float, 0 to 1"
    assert types["inner.size"] == "int, > 0"

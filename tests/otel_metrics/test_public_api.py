"""The facade exports exactly its documented API (a test keeps __all__ accurate, as httpx does)."""

from __future__ import annotations

import inspect

import otel_metrics


def test_all_is_sorted_and_matches_public_names() -> None:
    assert otel_metrics.__all__ == sorted(otel_metrics.__all__)
    public = {
        name
        for name, value in vars(otel_metrics).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(otel_metrics.__all__)


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in otel_metrics.__all__:
        obj = getattr(otel_metrics, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_configure_is_keyword_only_after_service_name() -> None:
    params = inspect.signature(otel_metrics.configure).parameters
    assert next(iter(params)) == "service_name"
    for name in ("endpoint", "protocol", "headers", "resource_attributes", "pricing", "metric_dimensions"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY

"""Fixtures for tests in more than one directory."""

from __future__ import annotations

import pytest

from processors import _sdk_internals


@pytest.fixture(params=["sdk internals", "public API"])
def sdk_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test twice: with the fast paths that use the SDK's private internals (when the installed SDK is one
    they were tested on), and with those switched off, as on any other SDK version."""
    if request.param == "public API":
        monkeypatch.setattr(_sdk_internals, "use_sdk_internals", False)
    return str(request.param)

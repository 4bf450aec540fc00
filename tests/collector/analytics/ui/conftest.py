"""Real PostgreSQL for the UI tests: a session-wide pgserver in a temp dir (tests/conftest.py), and
the extension serving a loaded schema (``ui_server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.collector.analytics.ui.ui_server import Served, serving


@pytest.fixture(scope="module")
def served(pg_server_dsn: str) -> Iterator[Served]:
    """Shared by a module's tests: they only read."""
    with serving(pg_server_dsn) as (server, _):
        yield server

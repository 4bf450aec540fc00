"""Real PostgreSQL for the UI tests: a session-wide pgserver in a temp dir (or ``OTEL_METRICS_TEST_PG_DSN``), and
the extension serving a loaded schema (``ui_server``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ui_server import Served, serving

TEST_DSN_ENV = "OTEL_METRICS_TEST_PG_DSN"


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    dsn = os.environ.get(TEST_DSN_ENV)
    if dsn:
        yield dsn
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    # Not under pytest's 0700 basetemp: as root, pgserver runs PostgreSQL as its own user.
    parent = Path(tempfile.mkdtemp(prefix="otel-ui-pg-"))
    server = pgserver.get_server(parent / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def served(pg_server_dsn: str) -> Iterator[Served]:
    """Shared by a module's tests: they only read."""
    with serving(pg_server_dsn) as (server, _):
        yield server

"""Real PostgreSQL for the sink tests: a session-wide pgserver in a temp dir, or ``OTEL_METRICS_TEST_PG_DSN``.

Each test gets its own schema (``search_path``), migrated, so tests are independent and can run concurrently
with other people's tests against one server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from collector.exporters.postgres import schema

TEST_DSN_ENV = "OTEL_METRICS_TEST_PG_DSN"
# --import-mode=importlib puts no test folder on sys.path; the helpers module next to this file is imported
# by name.
sys.path.insert(0, str(Path(__file__).parent))
from sink_pg import schema_dsn  # noqa: E402  (a module of its own: tests/analytics has a conftest too)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    dsn = os.environ.get(TEST_DSN_ENV)
    if dsn:
        yield dsn
        return
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    with private_tmp_dir() as tmp:
        server = pgserver.get_server(tmp / "data", cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()


@contextlib.contextmanager
def private_tmp_dir() -> Iterator[Path]:
    """A temp dir outside pytest's basetemp: concurrent pytest runs (other people's) prune old basetemps,
    which would pull a running PostgreSQL's data directory from under it."""
    path = Path(tempfile.mkdtemp(prefix="otel-sink-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sink_tmp_path() -> Iterator[Path]:
    with private_tmp_dir() as path:
        yield path


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh, migrated schema dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    dsn = schema_dsn(pg_server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.migrate(conn)
    yield dsn
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn
